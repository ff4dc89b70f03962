"""lme4 as a peer for the mixed-model tests and benchmarks (never used by the library itself).

:func:`fit_lme4` writes the trials to a CSV file and runs R's ``lmer`` through
``Rscript`` in a subprocess, so R is needed only where a test or benchmark
compares with it (Debian: ``apt-get install r-cran-lme4``); :func:`lme4_available`
says whether it is there. With ``satterthwaite=True`` it also reports lmerTest's
Satterthwaite df (Debian: ``r-cran-lmertest``; :func:`lmertest_available`).
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
if (satterthwaite) suppressPackageStartupMessages(library(lmerTest))
times <- numeric(repeats)
invisible(gc(reset = TRUE))
for (i in seq_len(repeats)) {
  # with satterthwaite the timed work includes lmerTest's df (what brainres' default does in its fit)
  times[i] <- system.time({
    fit <- lme4::lmer(f, data = d, REML = reml, control = control)
    if (satterthwaite) tests <- coef(summary(as_lmerModLmerTest(fit)))
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
write.csv(out, args[6], row.names = FALSE)
"""


@functools.cache
def lme4_available() -> bool:
    """Whether ``Rscript`` runs and R's lme4 loads."""
    if shutil.which("Rscript") is None:
        return False
    probe = subprocess.run(["Rscript", "-e", "suppressPackageStartupMessages(library(lme4))"],
                           capture_output=True, timeout=120)
    return probe.returncode == 0


@functools.cache
def lmertest_available() -> bool:
    """Whether R's lmerTest loads (for the Satterthwaite df)."""
    if not lme4_available():
        return False
    probe = subprocess.run(["Rscript", "-e", "suppressPackageStartupMessages(library(lmerTest))"],
                           capture_output=True, timeout=120, check=False)
    return probe.returncode == 0


def fit_lme4(y, subject, stimulus, predictors: pd.DataFrame, *, reml=True, random_slopes=(), repeats=1,
             tight=False, satterthwaite=False, timeout=3600) -> dict:
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
        with ``satterthwaite`` lmerTest's df too).
    tight : bool
        Tighter optimiser tolerances than lme4's defaults (peer tests).
    satterthwaite : bool
        Also report lmerTest's Satterthwaite df of each fixed effect (``df``).

    Returns
    -------
    dict
        ``fixef`` and ``se`` (by term, "(Intercept)" renamed "Intercept"),
        ``vcov`` and ``sdcor`` (keys ``"group:var1:var2"`` as in
        ``as.data.frame(VarCorr(fit))``), ``loglik``, ``theta``, ``seconds``
        (one per repeat), ``memory_mb`` (R's "max used"), ``warnings``
        (the number of lme4 convergence messages) and ``n_evaluations``
        (deviance evaluations of lme4's optimiser); with ``satterthwaite``
        also ``df`` by term.
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
                              "TRUE" if satterthwaite else "FALSE"],
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
    }
