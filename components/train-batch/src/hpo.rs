//! Hyper-parameter search by successive halving (Jamieson & Talwalkar 2016): `max_trials` configurations
//! sampled from a declared space are trained on a small round budget; the best third go on with three
//! times the budget, and so on until the last rung trains the survivors with the full `num_boost_round`.
//! Every trial is scored by its best validation loss and recorded; the winner of the last rung is the model.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::gbdt::rng::Rng;
use crate::gbdt::{Booster, Dataset, Params, RoundEval, TrainError, train};

/// Survivors of a rung: the best `1/ETA`; the budget grows by `ETA`.
const ETA: usize = 3;
/// The smallest round budget a rung gets.
const MIN_ROUNDS: usize = 10;

/// One searched parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Dimension {
    /// A number in `[low, high]`, uniform or log-uniform, optionally rounded to an integer.
    Range {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
        /// Sample the logarithm uniformly (both bounds must be > 0).
        #[serde(default)]
        log: bool,
        /// Round to the nearest integer.
        #[serde(default)]
        integer: bool,
    },
    /// One of the listed values.
    Choice {
        /// Candidate values.
        choices: Vec<Value>,
    },
}

/// A search: the space over LightGBM parameter names, and how many configurations to try.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Search {
    /// Parameter name → dimension.
    pub space: BTreeMap<String, Dimension>,
    /// Configurations sampled (the seed guide's default: 20).
    #[serde(default = "default_trials")]
    pub max_trials: usize,
}

fn default_trials() -> usize {
    20
}

/// One trained configuration at one rung.
#[derive(Debug, Clone, Serialize)]
pub struct Trial {
    /// Configuration number (0-based, in sampling order).
    pub trial: usize,
    /// Rung (0 = smallest budget).
    pub rung: usize,
    /// Round budget at this rung.
    pub rounds: usize,
    /// The sampled values (the rest of the parameters are the job's).
    pub sampled: Map<String, Value>,
    /// Best validation loss (lower is better).
    pub score: f64,
    /// Round of the best validation loss.
    pub best_iteration: Option<usize>,
}

/// What a search produced.
#[derive(Debug)]
pub struct Outcome {
    /// The winning model, trained with the full budget.
    pub booster: Booster,
    /// The winner's full parameter map.
    pub params: Map<String, Value>,
    /// Every trial at every rung, in order.
    pub trials: Vec<Trial>,
}

impl Search {
    /// Checks the space: known names, sane bounds, and that its extreme values are valid parameters.
    pub fn validate(&self, base: &Map<String, Value>) -> Result<(), String> {
        if self.max_trials == 0 || self.max_trials > 1000 {
            return Err(format!("search.max_trials must be between 1 and 1000, got {}", self.max_trials));
        }
        if self.space.is_empty() {
            return Err("search.space is empty: name at least one parameter".into());
        }
        for (name, dim) in &self.space {
            let at = |v: Value| {
                let mut map = base.clone();
                map.insert(name.clone(), v);
                Params::from_map(&map).map(|_| ()).map_err(|e| format!("search.space.{name}: {e}"))
            };
            match dim {
                Dimension::Range { low, high, log, integer } => {
                    if !(low.is_finite() && high.is_finite() && low <= high) {
                        return Err(format!("search.space.{name}: needs finite low <= high"));
                    }
                    if *log && *low <= 0.0 {
                        return Err(format!("search.space.{name}: a log range needs low > 0"));
                    }
                    at(number(*low, *integer))?;
                    at(number(*high, *integer))?;
                }
                Dimension::Choice { choices } => {
                    if choices.is_empty() {
                        return Err(format!("search.space.{name}: choices is empty"));
                    }
                    for c in choices {
                        at(c.clone())?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs the search on `base` parameters. `progress(trial, rung, eval)` sees every round and may stop it.
    pub fn run(
        &self,
        base: &Map<String, Value>,
        train_set: &Dataset,
        valid: &Dataset,
        mut progress: impl FnMut(&Trial, &RoundEval) -> ControlFlow<()>,
    ) -> Result<Outcome, TrainError> {
        let full = Params::from_map(base)?;
        let mut rng = Rng::new(full.seed.map_or(0, |s| s as u64));
        let configs: Vec<Map<String, Value>> = (0..self.max_trials).map(|_| self.sample(&mut rng)).collect();
        let rungs = rung_count(self.max_trials, full.num_boost_round);
        let mut alive: Vec<usize> = (0..configs.len()).collect();
        let mut trials = Vec::new();
        let mut last: Vec<(usize, f64, Booster)> = Vec::new();
        for rung in 0..rungs {
            let rounds = (full.num_boost_round / ETA.pow((rungs - 1 - rung) as u32)).max(1);
            let mut scored = Vec::with_capacity(alive.len());
            for &trial in &alive {
                let mut map = base.clone();
                map.extend(configs[trial].clone());
                map.insert("num_boost_round".into(), rounds.into());
                let params = Params::from_map(&map)?;
                let mut record = Trial {
                    trial,
                    rung,
                    rounds,
                    sampled: configs[trial].clone(),
                    score: f64::INFINITY,
                    best_iteration: None,
                };
                let booster = train(&params, train_set, Some(valid), |eval| progress(&record, eval))?;
                // Without early stopping the model keeps every round: score the best round seen anyway.
                record.score = booster.info().valid_metric.filter(|s| s.is_finite()).unwrap_or(f64::INFINITY);
                record.best_iteration = booster.info().best_iteration;
                trials.push(record.clone());
                scored.push((trial, record.score, booster));
            }
            // Stable sort: equal scores keep sampling order, so the search is deterministic.
            scored.sort_by(|a, b| a.1.total_cmp(&b.1));
            let keep = if rung + 1 == rungs { 1 } else { scored.len().div_ceil(ETA) };
            scored.truncate(keep);
            alive = scored.iter().map(|s| s.0).collect();
            last = scored;
        }
        let (best, _, booster) = last.into_iter().next().expect("max_trials >= 1 leaves one survivor");
        let mut params = base.clone();
        params.extend(configs[best].clone());
        Ok(Outcome { booster, params, trials })
    }

    fn sample(&self, rng: &mut Rng) -> Map<String, Value> {
        self.space
            .iter()
            .map(|(name, dim)| {
                let v = match dim {
                    Dimension::Range { low, high, log, integer } => {
                        let u = rng.next_f64();
                        let x =
                            if *log { (low.ln() + u * (high.ln() - low.ln())).exp() } else { low + u * (high - low) };
                        number(x.clamp(*low, *high), *integer)
                    }
                    Dimension::Choice { choices } => choices[rng.below(choices.len())].clone(),
                };
                (name.clone(), v)
            })
            .collect()
    }
}

fn number(x: f64, integer: bool) -> Value {
    if integer { Value::from(x.round() as i64) } else { Value::from(x) }
}

/// Rungs so that the field shrinks to one configuration at the last (full-budget) rung, unless that would
/// give the first rung fewer than `MIN_ROUNDS` rounds.
fn rung_count(trials: usize, rounds: usize) -> usize {
    let mut rungs = 1;
    while ETA.pow(rungs as u32 - 1) < trials && rounds / ETA.pow(rungs as u32) >= MIN_ROUNDS {
        rungs += 1;
    }
    rungs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> Search {
        serde_json::from_value(serde_json::json!({
            "space": {
                "num_leaves": {"low": 4, "high": 32, "integer": true},
                "learning_rate": {"low": 0.02, "high": 0.3, "log": true},
                "lambda_l2": {"choices": [0.0, 1.0, 10.0]}
            },
            "max_trials": 9
        }))
        .unwrap()
    }

    fn data(seed: u64, n: usize) -> Dataset {
        let mut rng = Rng::new(seed);
        let mut cols: Vec<Vec<f64>> = (0..3).map(|_| Vec::with_capacity(n)).collect();
        let mut y = Vec::with_capacity(n);
        for _ in 0..n {
            let x: Vec<f64> = (0..3).map(|_| rng.next_f64() * 2.0 - 1.0).collect();
            y.push(x[0] * 2.0 + (x[1] * 3.0).sin() + 0.1 * rng.next_f64());
            for (c, v) in cols.iter_mut().zip(&x) {
                c.push(*v);
            }
        }
        Dataset::from_columns(vec!["a".into(), "b".into(), "c".into()], cols, y).unwrap()
    }

    #[test]
    fn halving_keeps_a_third_per_rung_and_is_deterministic() {
        let base: Map<String, Value> = serde_json::from_value(
            serde_json::json!({"num_boost_round": 90, "early_stopping_rounds": 10, "min_data_in_leaf": 5}),
        )
        .unwrap();
        let s = space();
        s.validate(&base).unwrap();
        let (tr, va) = (data(1, 600), data(2, 300));
        let a = s.run(&base, &tr, &va, |_, _| ControlFlow::Continue(())).unwrap();
        // 9 trials: rungs of 9, 3, 1 configurations at 10, 30, 90 rounds.
        let per_rung: Vec<usize> = (0..3).map(|r| a.trials.iter().filter(|t| t.rung == r).count()).collect();
        assert_eq!(per_rung, vec![9, 3, 1]);
        assert_eq!(a.trials.iter().map(|t| t.rounds).collect::<std::collections::BTreeSet<_>>().len(), 3);
        // The winner is the best of the last rung and its params carry the sampled values.
        let winner = a.trials.last().unwrap();
        assert_eq!(a.params["num_leaves"], winner.sampled["num_leaves"]);
        assert!(a.trials.iter().filter(|t| t.rung == 1).all(|t| t.score.is_finite()));
        let b = s.run(&base, &tr, &va, |_, _| ControlFlow::Continue(())).unwrap();
        assert_eq!(a.booster, b.booster);
    }

    #[test]
    fn bad_spaces_are_refused_with_the_parameter_named() {
        let base = Map::new();
        let mut s = space();
        s.space.insert("num_leaves".into(), Dimension::Range { low: 0.0, high: 8.0, log: false, integer: true });
        assert!(s.validate(&base).unwrap_err().contains("num_leaves"));
        let mut s = space();
        s.space.insert("no_such".into(), Dimension::Choice { choices: vec![1.into()] });
        assert!(s.validate(&base).unwrap_err().contains("no_such"));
        let mut s = space();
        s.max_trials = 0;
        assert!(s.validate(&base).is_err());
    }
}
