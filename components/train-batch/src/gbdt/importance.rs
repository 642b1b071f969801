//! Feature importance as LightGBM reports it: how often each feature splits, and the total gain of those splits.

use serde::{Deserialize, Serialize};

use super::booster::Booster;

/// Importance of one feature over all trees of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureImportance {
    /// Feature name.
    pub feature: String,
    /// Number of split nodes on the feature (LightGBM's `importance_type="split"`).
    pub splits: u64,
    /// Sum of those splits' gains (LightGBM's `importance_type="gain"`).
    pub gain: f64,
}

impl Booster {
    /// Split count and total gain of every feature, in feature order.
    pub fn feature_importance(&self) -> Vec<FeatureImportance> {
        let mut out: Vec<FeatureImportance> = self
            .feature_names()
            .iter()
            .map(|name| FeatureImportance { feature: name.clone(), splits: 0, gain: 0.0 })
            .collect();
        for node in self.trees().iter().flat_map(|t| t.nodes()) {
            // Feature indices are checked against the names when a model is built or deserialised.
            if let Some(imp) = out.get_mut(node.feature) {
                imp.splits += 1;
                imp.gain += node.gain;
            }
        }
        out
    }
}
