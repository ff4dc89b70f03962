# Peer calibration of the mixed-model slope interval in R (lme4 + lmerTest + pbkrtest), independent of brainres.
#
# Simulates the design of calibrate_trials.py --part mixed (its docstring; here R's random numbers, so other
# draws) and scores two intervals for the mean slope over the population of subjects, each fitted with
# lmer(log_rt ~ z + (1 + z | subject) + (1 | stimulus), REML):
#   Satterthwaite: lmerTest's df, estimate +- qt(0.975, df) * SE (what time-vs-rt reports);
#   Kenward-Roger: pbkrtest's adjusted SE and df, through lmerTest's summary(ddf = "Kenward-Roger").
# Coverage with its Clopper-Pearson interval (binom.test).
#
# pbkrtest's Kenward-Roger works on dense n x n matrices: about 30 s a fit at 10 x 160 (1,440 trials), against
# 0.3 s for Satterthwaite, so it can be left out (METHODS = satterthwaite).
#
#   Rscript docs/experiments/calibrate_mixed_peer.R SUBJECTS STIMULI SLOPE SLOPE_SD STUDIES [SEED [METHODS]]
#   Rscript docs/experiments/calibrate_mixed_peer.R 10 160 0.05 0.03 500 1 satterthwaite
#   Rscript docs/experiments/calibrate_mixed_peer.R 10 160 0.05 0.03 100 2 satterthwaite,kenward_roger
suppressPackageStartupMessages({library(lme4); library(lmerTest)})
raw <- commandArgs(trailingOnly = TRUE)
args <- as.numeric(raw[1:6])
n_subjects <- args[1]; n_stimuli <- args[2]; slope <- args[3]; slope_sd <- args[4]; studies <- args[5]
set.seed(if (length(raw) >= 6) args[6] else 1)
methods <- if (length(raw) >= 7) strsplit(raw[7], ",")[[1]] else c("satterthwaite", "kenward_roger")
ddf_name <- c(satterthwaite = "Satterthwaite", kenward_roger = "Kenward-Roger")
missing <- 0.1

study <- function() {
  x <- rnorm(n_stimuli)
  z <- (x - mean(x)) / sqrt(mean((x - mean(x))^2))
  stimulus_effect <- slope * z + 0.1 * rnorm(n_stimuli)
  subject_effect <- 0.15 * rnorm(n_subjects)
  subject_slope <- slope_sd * rnorm(n_subjects)
  d <- expand.grid(stimulus = seq_len(n_stimuli), subject = seq_len(n_subjects))
  d$z <- z[d$stimulus]
  d$log_rt <- log(0.8) + stimulus_effect[d$stimulus] + subject_effect[d$subject] +
    subject_slope[d$subject] * d$z + 0.3 * rnorm(nrow(d))
  d <- d[runif(nrow(d)) >= missing, ]
  d$subject <- factor(d$subject); d$stimulus <- factor(d$stimulus)
  d
}

hits <- setNames(numeric(length(methods)), methods)
widths <- dfs <- lapply(hits, function(h) numeric(0))
singular <- warned <- 0
started <- Sys.time()
for (i in seq_len(studies)) {
  d <- study()  # named: lmerTest evaluates the data argument again for its df (inline, a fresh draw)
  fit <- lmer(log_rt ~ z + (1 + z | subject) + (1 | stimulus), data = d, REML = TRUE)
  singular <- singular + isSingular(fit)
  warned <- warned + (length(fit@optinfo$conv$lme4$messages) > 0)
  for (key in methods) {
    row <- coef(summary(fit, ddf = ddf_name[[key]]))["z", ]
    half <- qt(0.975, row[["df"]]) * row[["Std. Error"]]
    hits[key] <- hits[key] + (abs(row[["Estimate"]] - slope) <= half)
    widths[[key]] <- c(widths[[key]], 2 * half)
    dfs[[key]] <- c(dfs[[key]], row[["df"]])
  }
  if (i %% 100 == 0) message(sprintf("%d studies, %.0f s", i, as.numeric(Sys.time() - started, units = "secs")))
}
# Median width and df: a fit whose lmerTest df fall below 1 gives an interval of thousands (counted apart).
cat("| subjects x stimuli | slopes SD | slope | interval | coverage [95% CI] | median width | median df | df < 2 | studies |\n")
for (key in names(hits)) {
  ci <- binom.test(hits[[key]], studies)$conf.int
  cat(sprintf("| %d x %d | %.2f | %.2f | %s | %.3f [%.3f, %.3f] | %.3f | %.1f | %d | %d |\n", n_subjects, n_stimuli,
              slope_sd, slope, key, hits[[key]] / studies, ci[1], ci[2], median(widths[[key]]),
              median(dfs[[key]]), sum(dfs[[key]] < 2), studies))
}
cat(sprintf("<!-- singular fits: %d of %d; lme4 convergence warnings: %d; %.0f s -->\n", singular, studies,
            warned, as.numeric(Sys.time() - started, units = "secs")))
