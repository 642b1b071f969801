//! Training parameters under LightGBM's names and aliases, read from a JSON or TOML map, with a
//! typed error naming the parameter at fault.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

use super::objective::Objective;
use super::rng::LgbRandom;

/// A parameter map could not be turned into [`Params`]; each variant names the parameter.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ParamError {
    /// The name is neither a parameter nor an alias of one.
    #[error("unknown parameter `{0}`")]
    Unknown(String),
    /// The same parameter was given under two names (say `eta` and `learning_rate`).
    #[error("parameter `{name}` given twice, as `{first}` and `{second}`")]
    Duplicate {
        /// Canonical name of the parameter.
        name: &'static str,
        /// First name it was given under.
        first: String,
        /// Second name it was given under.
        second: String,
    },
    /// The value has the wrong type or is out of range.
    #[error("invalid value for parameter `{name}`: {reason}")]
    Invalid {
        /// Canonical name of the parameter.
        name: &'static str,
        /// What is wrong with the value.
        reason: String,
    },
}

impl ParamError {
    /// The parameter at fault: the canonical name, or the unknown name as given.
    pub fn parameter(&self) -> &str {
        match self {
            ParamError::Unknown(name) => name,
            ParamError::Duplicate { name, .. } | ParamError::Invalid { name, .. } => name,
        }
    }
}

/// GBDT training parameters; field names are LightGBM's, defaults are LightGBM's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Params {
    /// Loss to minimise (`objective`; aliases `objective_type`, `app`, `application`, `loss`).
    pub objective: Objective,
    /// Shrinkage applied to each tree's leaf values (`learning_rate`, `eta`, `shrinkage_rate`); > 0.
    pub learning_rate: f64,
    /// Maximum leaves per tree (`num_leaves`, `max_leaves`…); at least 2.
    pub num_leaves: usize,
    /// Maximum tree depth; 0 or negative means no limit (`max_depth`).
    pub max_depth: i64,
    /// L1 regularisation of leaf values (`lambda_l1`, `reg_alpha`); ≥ 0.
    pub lambda_l1: f64,
    /// L2 regularisation of leaf values (`lambda_l2`, `reg_lambda`, `lambda`); ≥ 0.
    pub lambda_l2: f64,
    /// Minimum rows in a leaf (`min_data_in_leaf`, `min_child_samples`, `min_data`).
    pub min_data_in_leaf: usize,
    /// Minimum hessian sum in a leaf (`min_sum_hessian_in_leaf`, `min_child_weight`); ≥ 0.
    pub min_sum_hessian_in_leaf: f64,
    /// Minimum gain for a split to be made (`min_gain_to_split`, `min_split_gain`); ≥ 0.
    pub min_gain_to_split: f64,
    /// Fraction of features considered by each tree (`feature_fraction`, `colsample_bytree`); in (0, 1].
    pub feature_fraction: f64,
    /// Fraction of rows each bag keeps (`bagging_fraction`, `subsample`); in (0, 1].
    pub bagging_fraction: f64,
    /// Re-draw the bag every this many rounds; 0 disables bagging (`bagging_freq`, `subsample_freq`).
    pub bagging_freq: usize,
    /// Boosting rounds (`num_boost_round`, `num_iterations`, `n_estimators`…); at least 1.
    pub num_boost_round: usize,
    /// Stop when the valid metric has not improved for this many rounds; 0 disables
    /// (`early_stopping_rounds`, `early_stopping`, `n_iter_no_change`).
    pub early_stopping_rounds: usize,
    /// Maximum bins per feature, the NaN bin included (`max_bin`); 2 to 256.
    pub max_bin: usize,
    /// Minimum sampled rows per bin (`min_data_in_bin`); at least 1.
    pub min_data_in_bin: usize,
    /// Rows sampled to find bin boundaries (`bin_construct_sample_cnt`, `subsample_for_bin`).
    pub bin_construct_sample_cnt: usize,
    /// Huber loss threshold (`alpha`); > 0.
    pub alpha: f64,
    /// Master seed (`seed`, `random_seed`, `random_state`): as in LightGBM, when given it derives the three
    /// seeds below, except those given by their own names; None leaves them at their defaults.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i32>,
    /// Seed of the row sample bin boundaries come from (`data_random_seed`, `data_seed`); LightGBM's default 1.
    pub data_random_seed: i32,
    /// Seed of bagging's draws (`bagging_seed`, `bagging_fraction_seed`); LightGBM's default 3.
    pub bagging_seed: i32,
    /// Seed of `feature_fraction`'s draws (`feature_fraction_seed`); LightGBM's default 2.
    pub feature_fraction_seed: i32,
    /// Worker threads; 0 means rayon's default (`num_threads`, `n_jobs`, `nthread`). Results do not depend on it.
    pub num_threads: usize,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            objective: Objective::Regression,
            learning_rate: 0.1,
            num_leaves: 31,
            max_depth: -1,
            lambda_l1: 0.0,
            lambda_l2: 0.0,
            min_data_in_leaf: 20,
            min_sum_hessian_in_leaf: 1e-3,
            min_gain_to_split: 0.0,
            feature_fraction: 1.0,
            bagging_fraction: 1.0,
            bagging_freq: 0,
            num_boost_round: 100,
            early_stopping_rounds: 0,
            max_bin: 255,
            min_data_in_bin: 3,
            bin_construct_sample_cnt: 200_000,
            alpha: 0.9,
            seed: None,
            data_random_seed: 1,
            bagging_seed: 3,
            feature_fraction_seed: 2,
            num_threads: 0,
        }
    }
}

/// Every accepted name and the canonical parameter it sets (LightGBM's aliases).
const NAMES: &[(&str, &str)] = &[
    ("objective", "objective"),
    ("objective_type", "objective"),
    ("app", "objective"),
    ("application", "objective"),
    ("loss", "objective"),
    ("learning_rate", "learning_rate"),
    ("eta", "learning_rate"),
    ("shrinkage_rate", "learning_rate"),
    ("num_leaves", "num_leaves"),
    ("num_leaf", "num_leaves"),
    ("max_leaves", "num_leaves"),
    ("max_leaf", "num_leaves"),
    ("max_leaf_nodes", "num_leaves"),
    ("max_depth", "max_depth"),
    ("lambda_l1", "lambda_l1"),
    ("reg_alpha", "lambda_l1"),
    ("l1_regularization", "lambda_l1"),
    ("lambda_l2", "lambda_l2"),
    ("reg_lambda", "lambda_l2"),
    ("lambda", "lambda_l2"),
    ("l2_regularization", "lambda_l2"),
    ("min_data_in_leaf", "min_data_in_leaf"),
    ("min_data_per_leaf", "min_data_in_leaf"),
    ("min_data", "min_data_in_leaf"),
    ("min_child_samples", "min_data_in_leaf"),
    ("min_samples_leaf", "min_data_in_leaf"),
    ("min_sum_hessian_in_leaf", "min_sum_hessian_in_leaf"),
    ("min_sum_hessian_per_leaf", "min_sum_hessian_in_leaf"),
    ("min_sum_hessian", "min_sum_hessian_in_leaf"),
    ("min_hessian", "min_sum_hessian_in_leaf"),
    ("min_child_weight", "min_sum_hessian_in_leaf"),
    ("min_gain_to_split", "min_gain_to_split"),
    ("min_split_gain", "min_gain_to_split"),
    ("feature_fraction", "feature_fraction"),
    ("sub_feature", "feature_fraction"),
    ("colsample_bytree", "feature_fraction"),
    ("bagging_fraction", "bagging_fraction"),
    ("sub_row", "bagging_fraction"),
    ("subsample", "bagging_fraction"),
    ("bagging", "bagging_fraction"),
    ("bagging_freq", "bagging_freq"),
    ("subsample_freq", "bagging_freq"),
    ("num_boost_round", "num_boost_round"),
    ("num_iterations", "num_boost_round"),
    ("num_iteration", "num_boost_round"),
    ("n_iter", "num_boost_round"),
    ("num_tree", "num_boost_round"),
    ("num_trees", "num_boost_round"),
    ("num_round", "num_boost_round"),
    ("num_rounds", "num_boost_round"),
    ("nrounds", "num_boost_round"),
    ("n_estimators", "num_boost_round"),
    ("max_iter", "num_boost_round"),
    ("early_stopping_rounds", "early_stopping_rounds"),
    ("early_stopping_round", "early_stopping_rounds"),
    ("early_stopping", "early_stopping_rounds"),
    ("n_iter_no_change", "early_stopping_rounds"),
    ("max_bin", "max_bin"),
    ("max_bins", "max_bin"),
    ("min_data_in_bin", "min_data_in_bin"),
    ("bin_construct_sample_cnt", "bin_construct_sample_cnt"),
    ("subsample_for_bin", "bin_construct_sample_cnt"),
    ("alpha", "alpha"),
    ("seed", "seed"),
    ("random_seed", "seed"),
    ("random_state", "seed"),
    ("data_random_seed", "data_random_seed"),
    ("data_seed", "data_random_seed"),
    ("bagging_seed", "bagging_seed"),
    ("bagging_fraction_seed", "bagging_seed"),
    ("feature_fraction_seed", "feature_fraction_seed"),
    ("num_threads", "num_threads"),
    ("num_thread", "num_threads"),
    ("nthread", "num_threads"),
    ("nthreads", "num_threads"),
    ("n_jobs", "num_threads"),
    ("verbosity", "verbosity"),
    ("verbose", "verbosity"),
];

/// The canonical LightGBM name of a parameter name or alias (`n_estimators` → `num_boost_round`).
pub fn canonical_name(given: &str) -> Option<&'static str> {
    NAMES.iter().find(|(alias, _)| *alias == given).map(|&(_, name)| name)
}

impl Params {
    /// Reads parameters from a map of LightGBM names or aliases; absent ones keep their defaults.
    pub fn from_map(map: &Map<String, Value>) -> Result<Self, ParamError> {
        let mut params = Params::default();
        let mut seen: Vec<(&'static str, &str)> = Vec::with_capacity(map.len());
        for (given, value) in map {
            let Some(&(_, name)) = NAMES.iter().find(|(alias, _)| *alias == given.as_str()) else {
                return Err(ParamError::Unknown(given.clone()));
            };
            if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
                return Err(ParamError::Duplicate { name, first: (*first).to_owned(), second: given.clone() });
            }
            seen.push((name, given));
            params.set(name, value)?;
        }
        if let Some(seed) = params.seed {
            // LightGBM's `Config::Set`: six draws of `Random(seed)` (data, bagging, drop, feature fraction,
            // objective, extra); a seed given by its own name wins.
            let mut rng = LgbRandom::new(seed);
            let derived = [0; 6].map(|_| rng.next_short(0, i32::from(i16::MAX)));
            let given = |name: &str| seen.iter().any(|(n, _)| *n == name);
            for (i, (name, field)) in [
                (0, ("data_random_seed", &mut params.data_random_seed)),
                (1, ("bagging_seed", &mut params.bagging_seed)),
                (3, ("feature_fraction_seed", &mut params.feature_fraction_seed)),
            ] {
                if !given(name) {
                    *field = derived[i];
                }
            }
        }
        params.validate()?;
        Ok(params)
    }

    /// Checks every value is in its range (fields are public, so [`train`](super::train) checks
    /// hand-built parameters too).
    pub fn validate(&self) -> Result<(), ParamError> {
        let check = |ok: bool, name: &'static str, rule: &str| if ok { Ok(()) } else { Err(invalid(name, rule)) };
        let non_negative = |x: f64| x >= 0.0 && x.is_finite();
        let fraction = |x: f64| x > 0.0 && x <= 1.0;
        check(self.learning_rate > 0.0 && self.learning_rate.is_finite(), "learning_rate", "must be > 0")?;
        check((2..=131_072).contains(&self.num_leaves), "num_leaves", "must be between 2 and 131072")?;
        check(non_negative(self.lambda_l1), "lambda_l1", "must be >= 0")?;
        check(non_negative(self.lambda_l2), "lambda_l2", "must be >= 0")?;
        check(non_negative(self.min_sum_hessian_in_leaf), "min_sum_hessian_in_leaf", "must be >= 0")?;
        check(non_negative(self.min_gain_to_split), "min_gain_to_split", "must be >= 0")?;
        check(fraction(self.feature_fraction), "feature_fraction", "must be in (0, 1]")?;
        check(fraction(self.bagging_fraction), "bagging_fraction", "must be in (0, 1]")?;
        check(self.num_boost_round >= 1, "num_boost_round", "must be at least 1")?;
        check((2..=256).contains(&self.max_bin), "max_bin", "must be between 2 and 256 (bins are stored as u8)")?;
        check(self.min_data_in_bin >= 1, "min_data_in_bin", "must be at least 1")?;
        check(self.bin_construct_sample_cnt >= 1, "bin_construct_sample_cnt", "must be at least 1")?;
        check(self.alpha > 0.0 && self.alpha.is_finite(), "alpha", "must be > 0")
    }

    /// Sets one canonical parameter from a JSON value, checking its type (ranges: [`Params::validate`]).
    fn set(&mut self, name: &'static str, value: &Value) -> Result<(), ParamError> {
        match name {
            "objective" => {
                let text = value.as_str().ok_or_else(|| invalid(name, "expected a string"))?;
                self.objective = Objective::from_name(text)
                    .ok_or_else(|| invalid(name, format!("unsupported objective `{text}`")))?;
            }
            "learning_rate" => self.learning_rate = float(name, value)?,
            "num_leaves" => self.num_leaves = count(name, value)?,
            "max_depth" => self.max_depth = integer(name, value)?,
            "lambda_l1" => self.lambda_l1 = float(name, value)?,
            "lambda_l2" => self.lambda_l2 = float(name, value)?,
            "min_data_in_leaf" => self.min_data_in_leaf = count(name, value)?,
            "min_sum_hessian_in_leaf" => self.min_sum_hessian_in_leaf = float(name, value)?,
            "min_gain_to_split" => self.min_gain_to_split = float(name, value)?,
            "feature_fraction" => self.feature_fraction = float(name, value)?,
            "bagging_fraction" => self.bagging_fraction = float(name, value)?,
            "bagging_freq" => self.bagging_freq = count(name, value)?,
            "num_boost_round" => self.num_boost_round = count(name, value)?,
            // LightGBM: a value <= 0 disables early stopping.
            "early_stopping_rounds" => self.early_stopping_rounds = integer(name, value)?.max(0) as usize,
            "max_bin" => self.max_bin = count(name, value)?,
            "min_data_in_bin" => self.min_data_in_bin = count(name, value)?,
            "bin_construct_sample_cnt" => self.bin_construct_sample_cnt = count(name, value)?,
            "alpha" => self.alpha = float(name, value)?,
            "seed" => self.seed = Some(int32(name, value)?),
            "data_random_seed" => self.data_random_seed = int32(name, value)?,
            "bagging_seed" => self.bagging_seed = int32(name, value)?,
            "feature_fraction_seed" => self.feature_fraction_seed = int32(name, value)?,
            // LightGBM: a value <= 0 means the default thread count.
            "num_threads" => self.num_threads = integer(name, value)?.max(0) as usize,
            // Accepted for LightGBM configs; logging is the caller's business.
            _ => {}
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Params {
    /// Any serde format holding a map (JSON, TOML); use [`Params::from_map`] for a typed error.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = Map::<String, Value>::deserialize(deserializer)?;
        Params::from_map(&map).map_err(serde::de::Error::custom)
    }
}

/// An `Invalid` error for `name`.
fn invalid(name: &'static str, reason: impl Into<String>) -> ParamError {
    ParamError::Invalid { name, reason: reason.into() }
}

/// A finite number.
fn float(name: &'static str, value: &Value) -> Result<f64, ParamError> {
    value.as_f64().filter(|x| x.is_finite()).ok_or_else(|| invalid(name, "expected a finite number"))
}

/// A whole number; `31.0` is accepted because hyper-parameter searches often produce floats.
fn integer(name: &'static str, value: &Value) -> Result<i64, ParamError> {
    if let Some(i) = value.as_i64() {
        return Ok(i);
    }
    match value.as_f64() {
        Some(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => Ok(x as i64),
        _ => Err(invalid(name, "expected an integer")),
    }
}

/// A whole number in LightGBM's `int` range (seeds).
fn int32(name: &'static str, value: &Value) -> Result<i32, ParamError> {
    let i = integer(name, value)?;
    i32::try_from(i).map_err(|_| invalid(name, format!("must fit in 32 bits, got {i}")))
}

/// A non-negative whole number.
fn count(name: &'static str, value: &Value) -> Result<usize, ParamError> {
    let i = integer(name, value)?;
    usize::try_from(i).map_err(|_| invalid(name, format!("must be >= 0, got {i}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Params, ParamError> {
        match v {
            Value::Object(m) => Params::from_map(&m),
            _ => unreachable!("tests pass objects"),
        }
    }

    #[test]
    fn aliases_map_to_canonical_names() {
        let p = parse(json!({"eta": 0.2, "colsample_bytree": 0.8, "subsample": 0.7, "subsample_freq": 1,
            "reg_alpha": 1.5, "reg_lambda": 2.0, "min_child_samples": 5, "n_estimators": 7,
            "loss": "mse", "num_leaves": 63.0, "verbosity": -1, "n_jobs": -1, "early_stopping": 10}))
        .unwrap();
        assert_eq!(p.learning_rate, 0.2);
        assert_eq!(p.feature_fraction, 0.8);
        assert_eq!(p.bagging_fraction, 0.7);
        assert_eq!(p.bagging_freq, 1);
        assert_eq!((p.lambda_l1, p.lambda_l2), (1.5, 2.0));
        assert_eq!(p.min_data_in_leaf, 5);
        assert_eq!(p.num_boost_round, 7);
        assert_eq!(p.num_leaves, 63);
        assert_eq!(p.num_threads, 0);
        assert_eq!(p.early_stopping_rounds, 10);
        assert_eq!(p.objective, Objective::Regression);
    }

    #[test]
    fn errors_name_the_parameter() {
        let e = parse(json!({"num_leaves": 1})).unwrap_err();
        assert_eq!(e.parameter(), "num_leaves");
        assert_eq!(parse(json!({"eta": 0.0})).unwrap_err().parameter(), "learning_rate");
        assert_eq!(parse(json!({"subsample": 1.5})).unwrap_err().parameter(), "bagging_fraction");
        assert_eq!(parse(json!({"feature_fraction": 0})).unwrap_err().parameter(), "feature_fraction");
        assert_eq!(parse(json!({"max_bin": 300})).unwrap_err().parameter(), "max_bin");
        assert_eq!(parse(json!({"min_data_in_leaf": 2.5})).unwrap_err().parameter(), "min_data_in_leaf");
        assert_eq!(parse(json!({"objective": "lambdarank"})).unwrap_err().parameter(), "objective");
        assert_eq!(parse(json!({"alpha": "x"})).unwrap_err().parameter(), "alpha");
        let hand_built = Params { bagging_fraction: f64::NAN, ..Params::default() };
        assert_eq!(hand_built.validate().unwrap_err().parameter(), "bagging_fraction");
        assert_eq!(parse(json!({"colour": 1})).unwrap_err(), ParamError::Unknown("colour".into()));
        assert!(matches!(
            parse(json!({"eta": 0.1, "learning_rate": 0.2})).unwrap_err(),
            ParamError::Duplicate { name: "learning_rate", .. }
        ));
    }

    #[test]
    fn seeds_derive_as_in_lightgbm() {
        let p = Params::default();
        assert_eq!((p.seed, p.data_random_seed, p.bagging_seed, p.feature_fraction_seed), (None, 1, 3, 2));
        // LightGBM 4's `Config::Set` for seed 0 and 42 (draws 1, 2 and 4 of `Random(seed)`).
        let p = parse(json!({"seed": 0})).unwrap();
        assert_eq!((p.data_random_seed, p.bagging_seed, p.feature_fraction_seed), (38, 7719, 2437));
        let p = parse(json!({"random_state": 42, "bagging_seed": 9})).unwrap();
        assert_eq!((p.seed, p.data_random_seed, p.bagging_seed, p.feature_fraction_seed), (Some(42), 175, 9, 30056));
        assert_eq!(parse(json!({"seed": 1u64 << 40})).unwrap_err().parameter(), "seed");
    }

    #[test]
    fn serde_round_trip_and_toml_like_input() {
        let p = parse(json!({"objective": "binary", "max_depth": 8, "seed": 42})).unwrap();
        let text = serde_json::to_string(&p).unwrap();
        let back: Params = serde_json::from_str(&text).unwrap();
        assert_eq!(back, p);
        let unseeded = Params::default();
        assert_eq!(serde_json::from_str::<Params>(&serde_json::to_string(&unseeded).unwrap()).unwrap(), unseeded);
        let err = serde_json::from_str::<Params>(r#"{"num_leaves": 0}"#).unwrap_err();
        assert!(err.to_string().contains("num_leaves"));
    }
}
