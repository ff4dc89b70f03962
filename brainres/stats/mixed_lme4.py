"""lme4 as a peer for the mixed-model tests and benchmarks (never used by the library itself).

:func:`fit_lme4` writes the trials to a CSV file and runs R's ``lmer`` through
``Rscript`` in a subprocess, so R is needed only where a test or benchmark
compares with it (Debian: ``apt-get install r-cran-lme4``); :func:`lme4_available`
says whether it is there. With ``satterthwaite=True`` it also reports lmerTest's
Satterthwaite df (Debian: ``r-cran-lmertest``; :func:`lmertest_available`), and with
``kenward_roger=True`` pbkrtest's Kenward-Roger SE and df through lmerTest (Debian:
``r-cran-pbkrtest``; :func:`pbkrtest_available`; dense ``n x n``, so small designs only).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

_SCRIPT = r"""
args <- commandArgs(trailingOnly = TRUE)
suppressPackageStartupMessages(library(lme4))
d <- read.csv(args[1], colClasses = c(subject = "character", stimulus = "character"))
d$subject <- factor(d$subject)
d$stimulus <- factor(d$stimulus)
f <- as.formula(args[2])
reml <- args[3] == "TRUE"
repeats <- as.integer(args[4])
control <- if (args[5] == "tight") {
  lmerControl(optCtrl = list(xtol_abs = 1e-12, ftol_abs = 1e-12, xtol_rel = 1e-12, ftol_rel = 1e-15))
} else {
  lmerControl()
}
satterthwaite <- args[7] == "TRUE"
kenward_roger <- args[8] == "TRUE"
if (satterthwaite || kenward_roger) suppressPackageStartupMessages(library(lmerTest))
times <- numeric(repeats)
invisible(gc(reset = TRUE))
for (i in seq_len(repeats)) {
  # the timed work includes lmerTest's df and pbkrtest's Kenward-Roger where asked (as brainres' fit does)
  times[i] <- system.time({
    fit <- lme4::lmer(f, data = d, REML = reml, control = control)
    if (satterthwaite) tests <- coef(summary(as_lmerModLmerTest(fit)))
    if (kenward_roger) kr <- coef(summary(as_lmerModLmerTest(fit), ddf = "Kenward-Roger"))
  })[["elapsed"]]
}
usage <- gc()
memory <- sum(usage[, ncol(usage)])  # "max used" in Mb, cells and vectors
fe <- fixef(fit)
se <- sqrt(diag(as.matrix(vcov(fit))))
vc <- as.data.frame(VarCorr(fit))
theta <- getME(fit, "theta")
key <- paste(vc$grp, ifelse(is.na(vc$var1), "", vc$var1), ifelse(is.na(vc$var2), "", vc$var2), sep = ":")
out <- rbind(
  data.frame(kind = "fixef", name = names(fe), value = unname(fe)),
  data.frame(kind = "se", name = names(se), value = unname(se)),
  data.frame(kind = "vcov", name = key, value = vc$vcov),
  data.frame(kind = "sdcor", name = key, value = vc$sdcor),
  data.frame(kind = "loglik", name = "loglik", value = as.numeric(logLik(fit))),
  data.frame(kind = "theta", name = names(theta), value = unname(theta)),
  data.frame(kind = "seconds", name = paste0("run", seq_along(times)), value = times),
  data.frame(kind = "memory_mb", name = "max_used", value = memory),
  data.frame(kind = "converged", name = "messages", value = length(fit@optinfo$conv$lme4$messages)),
  data.frame(kind = "evaluations", name = "feval", value = as.numeric(fit@optinfo$feval))
)
if (satterthwaite) {
  out <- rbind(out, data.frame(kind = "df", name = rownames(tests), value = unname(tests[, "df"])))
}
if (kenward_roger) {
  out <- rbind(out, data.frame(kind = "kr_se", name = rownames(kr), value = unname(kr[, "Std. Error"])),
               data.frame(kind = "kr_df", name = rownames(kr), value = unname(kr[, "df"])))
}
write.csv(out, args[6], row.names = FALSE)
"""


def lme4_available() -> bool:
    """Whether ``Rscript`` runs and R's lme4 loads."""
    return shutil.which("Rscript") is not None and _r_package_loads("lme4")


def lmertest_available() -> bool:
    """Whether R's lmerTest loads (for the Satterthwaite df)."""
    return lme4_available() and _r_package_loads("lmerTest")


def pbkrtest_available() -> bool:
    """Whether R's lmerTest and pbkrtest load (for Kenward-Roger's SE and df)."""
    return lmertest_available() and _r_package_loads("pbkrtest")


@functools.cache
def _r_package_loads(package: str) -> bool:
    probe = subprocess.run(["Rscript", "-e", f"suppressPackageStartupMessages(library({package}))"],
                           capture_output=True, timeout=120, check=False)
    return probe.returncode == 0


def fit_lme4(y, subject, stimulus, predictors: pd.DataFrame, *, reml=True, random_slopes=(), repeats=1,
             tight=False, satterthwaite=False, kenward_roger=False, timeout=3600) -> dict:
    """Fit ``y ~ predictors + (1 + slopes | subject) + (1 | stimulus)`` with lme4's ``lmer``.

    Parameters
    ----------
    y : array_like
        The response (already logged where wanted).
    subject, stimulus : array_like
        Grouping labels per trial.
    predictors : pandas.DataFrame
        Per-trial fixed-effect columns (plain identifiers).
    reml : bool
    random_slopes : sequence of str
        Predictors with random slopes by subject.
    repeats : int
        Fits timed in the same R session (``system.time`` around ``lmer``,
        model frame construction included, R's start and the CSV read not;
        with ``satterthwaite`` lmerTest's df too, with ``kenward_roger``
        pbkrtest's adjustment).
    tight : bool
        Tighter optimiser tolerances than lme4's defaults (peer tests).
    satterthwaite : bool
        Also report lmerTest's Satterthwaite df of each fixed effect (``df``).
    kenward_roger : bool
        Also report Kenward-Roger's adjusted SE and df (``kr_se``, ``kr_df``;
        pbkrtest through lmerTest, REML fits).

    Returns
    -------
    dict
        ``fixef`` and ``se`` (by term, "(Intercept)" renamed "Intercept"),
        ``vcov`` and ``sdcor`` (keys ``"group:var1:var2"`` as in
        ``as.data.frame(VarCorr(fit))``), ``loglik``, ``theta``, ``seconds``
        (one per repeat), ``memory_mb`` (R's "max used"), ``warnings``
        (the number of lme4 convergence messages) and ``n_evaluations``
        (deviance evaluations of lme4's optimiser); with ``satterthwaite``
        also ``df`` by term; with ``kenward_roger`` ``kr_se`` and ``kr_df``.
    """
    predictors = pd.DataFrame(predictors).reset_index(drop=True)
    frame = pd.concat([pd.DataFrame({"y": np.asarray(y, dtype=float), "subject": np.asarray(subject).astype(str),
                                     "stimulus": np.asarray(stimulus).astype(str)}), predictors], axis=1)
    slopes = " + ".join(("1", *random_slopes))
    formula = f"y ~ {' + '.join(predictors.columns) or '1'} + ({slopes} | subject) + (1 | stimulus)"
    with tempfile.TemporaryDirectory(prefix="brainres-lme4-") as folder:
        data, script, output = (Path(folder) / name for name in ("trials.csv", "fit.R", "out.csv"))
        frame.to_csv(data, index=False, float_format="%.17g")
        script.write_text(_SCRIPT)
        run = subprocess.run(["Rscript", str(script), str(data), formula, "TRUE" if reml else "FALSE",
                              str(int(repeats)), "tight" if tight else "default", str(output),
                              "TRUE" if satterthwaite else "FALSE", "TRUE" if kenward_roger else "FALSE"],
                             capture_output=True, text=True, timeout=timeout)
        if run.returncode != 0:
            raise RuntimeError(f"lmer failed (exit {run.returncode}): {run.stderr[-2000:]}")
        table = pd.read_csv(output, keep_default_na=False)
    table["name"] = table["name"].str.replace("(Intercept)", "Intercept", regex=False)
    result = {kind: dict(zip(part["name"], part["value"].astype(float))) for kind, part in table.groupby("kind")}
    return {
        "fixef": result["fixef"], "se": result["se"], "vcov": result["vcov"], "sdcor": result["sdcor"],
        "loglik": result["loglik"]["loglik"], "theta": list(result["theta"].values()),
        "seconds": list(result["seconds"].values()), "memory_mb": result["memory_mb"]["max_used"],
        "warnings": int(result["converged"]["messages"]), "formula": formula,
        "n_evaluations": int(result["evaluations"]["feval"]),
        **({"df": result["df"]} if satterthwaite else {}),
        **({"kr_se": result["kr_se"], "kr_df": result["kr_df"]} if kenward_roger else {}),
    }
