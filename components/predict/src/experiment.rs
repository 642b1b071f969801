//! Live champion/challenger comparison once labels are realised.
//!
//! Each variant's daily cross-sectional IC (Pearson of score vs label over the symbols it served
//! that date) and Rank IC (Spearman, average ranks for ties) are computed as Qlib's signal
//! analysis does. Because the variants serve different symbols on the same dates, the decision
//! uses a paired t-test on the daily IC differences (challenger − champion): pairing by date
//! removes the market-wide swings in IC that both variants share.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};
use train_batch::metrics::{pearson, spearman};

use crate::ab::Variant;

/// Days with fewer complete (score, label) rows than this have no IC: two points always correlate ±1.
pub const MIN_ROWS_PER_DAY: usize = 3;
/// Paired days needed before either variant is declared better.
pub const MIN_PAIRED_DAYS: usize = 20;
/// Two-sided significance level of the paired t-test.
pub const SIGNIFICANCE: f64 = 0.05;

/// One logged prediction with its realised label.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Outcome<'a> {
    /// Trading date (any string that sorts chronologically, such as ISO `2024-05-31`).
    pub date: &'a str,
    /// The variant that produced the score.
    pub variant: Variant,
    /// The predicted score.
    pub score: f64,
    /// The realised label (say the forward return); NaN rows are left out of the correlations.
    pub label: f64,
}

/// One variant's live signal quality.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantSummary {
    /// Outcomes logged for the variant.
    pub count: usize,
    /// Dates with at least one outcome.
    pub days: usize,
    /// Dates with a defined IC (≥ [`MIN_ROWS_PER_DAY`] complete rows, neither side constant).
    pub ic_days: usize,
    /// Mean daily IC over those dates.
    pub mean_ic: Option<f64>,
    /// Mean daily Rank IC over dates where it is defined.
    pub mean_rank_ic: Option<f64>,
}

/// Both variants' correlations on one date.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DailyComparison {
    /// The date.
    pub date: String,
    /// Champion's IC that day.
    pub champion_ic: Option<f64>,
    /// Challenger's IC that day.
    pub challenger_ic: Option<f64>,
    /// Champion's Rank IC that day.
    pub champion_rank_ic: Option<f64>,
    /// Challenger's Rank IC that day.
    pub challenger_rank_ic: Option<f64>,
}

/// Paired t-test of daily IC differences (challenger − champion).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairedTest {
    /// Dates where both variants have an IC.
    pub n: usize,
    /// Mean difference; None without paired dates.
    pub mean_diff: Option<f64>,
    /// Sample standard deviation (ddof = 1) of the differences; None with fewer than two.
    pub std_diff: Option<f64>,
    /// mean / (std / √n); None with fewer than two dates or constant differences.
    pub t_statistic: Option<f64>,
    /// Two-sided p-value from Student's t with n − 1 degrees of freedom.
    pub p_value: Option<f64>,
}

/// What to do with the challenger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recommendation {
    /// The challenger's daily IC is significantly higher.
    PromoteChallenger,
    /// The challenger's daily IC is significantly lower.
    KeepChampion,
    /// Too few paired days, or no significant difference yet.
    NeedMoreData,
}

/// The live comparison of the two variants.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The champion's signal quality.
    pub champion: VariantSummary,
    /// The challenger's signal quality.
    pub challenger: VariantSummary,
    /// Per-date correlations, in date order.
    pub daily: Vec<DailyComparison>,
    /// The test on the daily IC differences.
    pub paired: PairedTest,
    /// The decision.
    pub recommendation: Recommendation,
    /// Why, in words (for dashboards and logs).
    pub reason: String,
}

/// One variant's rows on one date.
#[derive(Default)]
struct DayRows {
    rows: usize,
    scores: Vec<f64>,
    labels: Vec<f64>,
}

/// IC and Rank IC of one variant's day.
#[derive(Clone, Copy, Default)]
struct DayIc {
    ic: Option<f64>,
    rank_ic: Option<f64>,
}

/// Index of a variant in per-date arrays.
fn slot(v: Variant) -> usize {
    match v {
        Variant::Champion => 0,
        Variant::Challenger => 1,
    }
}

/// Compares the variants over the outcomes (any order): see the module docs.
pub fn compare(outcomes: &[Outcome<'_>]) -> Comparison {
    let mut by_date: BTreeMap<&str, [DayRows; 2]> = BTreeMap::new();
    for o in outcomes {
        let day = &mut by_date.entry(o.date).or_default()[slot(o.variant)];
        day.rows += 1;
        if !o.score.is_nan() && !o.label.is_nan() {
            day.scores.push(o.score);
            day.labels.push(o.label);
        }
    }
    let day_ic = |d: &DayRows| {
        if d.scores.len() < MIN_ROWS_PER_DAY {
            return DayIc::default();
        }
        // Equal lengths by construction: the only error cannot occur.
        DayIc {
            ic: pearson(&d.scores, &d.labels).ok().flatten(),
            rank_ic: spearman(&d.scores, &d.labels).ok().flatten(),
        }
    };
    let mut daily = Vec::with_capacity(by_date.len());
    let mut diffs = Vec::new();
    let mut acc = [Accumulator::default(), Accumulator::default()];
    for (date, days) in &by_date {
        let ics = [day_ic(&days[0]), day_ic(&days[1])];
        for ((a, d), ic) in acc.iter_mut().zip(days).zip(ics) {
            a.add(d, ic);
        }
        if let (Some(champion), Some(challenger)) = (ics[0].ic, ics[1].ic) {
            diffs.push(challenger - champion);
        }
        daily.push(DailyComparison {
            date: (*date).to_string(),
            champion_ic: ics[0].ic,
            challenger_ic: ics[1].ic,
            champion_rank_ic: ics[0].rank_ic,
            challenger_rank_ic: ics[1].rank_ic,
        });
    }
    let paired = paired_t_test(&diffs);
    let (recommendation, reason) = decide(&paired);
    let [champion, challenger] = acc.map(Accumulator::finish);
    Comparison { champion, challenger, daily, paired, recommendation, reason }
}

/// Running totals of one variant's days.
#[derive(Default)]
struct Accumulator {
    count: usize,
    days: usize,
    ic_sum: f64,
    ic_days: usize,
    rank_ic_sum: f64,
    rank_ic_days: usize,
}

impl Accumulator {
    fn add(&mut self, d: &DayRows, ic: DayIc) {
        if d.rows == 0 {
            return;
        }
        self.count += d.rows;
        self.days += 1;
        if let Some(x) = ic.ic {
            self.ic_sum += x;
            self.ic_days += 1;
        }
        if let Some(x) = ic.rank_ic {
            self.rank_ic_sum += x;
            self.rank_ic_days += 1;
        }
    }

    fn finish(self) -> VariantSummary {
        let mean = |sum: f64, n: usize| (n > 0).then(|| sum / n as f64);
        VariantSummary {
            count: self.count,
            days: self.days,
            ic_days: self.ic_days,
            mean_ic: mean(self.ic_sum, self.ic_days),
            mean_rank_ic: mean(self.rank_ic_sum, self.rank_ic_days),
        }
    }
}

/// One-sample t-test of `diffs` against zero (= scipy's `ttest_rel`, two-sided).
fn paired_t_test(diffs: &[f64]) -> PairedTest {
    let n = diffs.len();
    if n == 0 {
        return PairedTest { n, mean_diff: None, std_diff: None, t_statistic: None, p_value: None };
    }
    let mean = diffs.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return PairedTest { n, mean_diff: Some(mean), std_diff: None, t_statistic: None, p_value: None };
    }
    let std = (diffs.iter().map(|d| (d - mean) * (d - mean)).sum::<f64>() / (n - 1) as f64).sqrt();
    let t = mean / (std / (n as f64).sqrt());
    // Constant differences (std 0) leave t undefined; no p-value is better than an infinite t.
    let (t_statistic, p_value) = if std > 0.0 && t.is_finite() {
        let dist = StudentsT::new(0.0, 1.0, (n - 1) as f64).expect("df >= 1 is valid");
        // sf rather than 1 - cdf keeps precision for tiny p-values.
        (Some(t), Some((2.0 * dist.sf(t.abs())).min(1.0)))
    } else {
        (None, None)
    };
    PairedTest { n, mean_diff: Some(mean), std_diff: Some(std), t_statistic, p_value }
}

/// The recommendation and its reason from the paired test.
fn decide(test: &PairedTest) -> (Recommendation, String) {
    let n = test.n;
    if n < MIN_PAIRED_DAYS {
        let mean = test.mean_diff.map_or(String::new(), |m| format!(" (mean IC difference so far {m:+.4})"));
        return (
            Recommendation::NeedMoreData,
            format!("only {n} days with an IC for both variants, at least {MIN_PAIRED_DAYS} are needed{mean}"),
        );
    }
    let mean = test.mean_diff.expect("n >= 1");
    let (Some(t), Some(p)) = (test.t_statistic, test.p_value) else {
        return (
            Recommendation::NeedMoreData,
            format!("the daily IC differences over {n} days are constant ({mean:+.4}); the t-test is undefined"),
        );
    };
    let stats =
        format!("mean daily IC difference (challenger − champion) {mean:+.4} over {n} days, t = {t:.3}, p = {p:.4}");
    if p < SIGNIFICANCE && mean > 0.0 {
        (Recommendation::PromoteChallenger, format!("challenger is significantly better: {stats}"))
    } else if p < SIGNIFICANCE && mean < 0.0 {
        (Recommendation::KeepChampion, format!("challenger is significantly worse: {stats}"))
    } else {
        (Recommendation::NeedMoreData, format!("no significant difference at {SIGNIFICANCE}: {stats}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ab::assign;

    use train_batch::gbdt::SplitMix64 as TestRng;

    /// `days` dates × 40 symbols split by [`assign`]; each variant's score is
    /// `signal × label + noise`, with its own signal strength.
    fn simulate(dates: &[String], champion: f64, challenger: f64, seed: u64) -> Vec<Outcome<'_>> {
        let mut rng = TestRng(seed);
        let mut out = Vec::new();
        for date in dates {
            for s in 0..40 {
                let variant = assign("exp", &format!("SYM{s}"), 0.5).unwrap();
                let signal = if variant == Variant::Champion { champion } else { challenger };
                let label = rng.normal();
                out.push(Outcome { date, variant, score: signal * label + rng.normal(), label });
            }
        }
        out
    }

    fn dates(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("2024-{:02}-{:02}", 1 + i / 28, 1 + i % 28)).collect()
    }

    #[test]
    fn clearly_better_challenger_is_promoted() {
        let dates = dates(30);
        let c = compare(&simulate(&dates, 0.1, 1.0, 1));
        assert_eq!(c.recommendation, Recommendation::PromoteChallenger, "{}", c.reason);
        assert!(c.reason.contains("significantly better"));
        assert_eq!(c.paired.n, 30);
        assert!(c.paired.p_value.unwrap() < 1e-6);
        assert!(c.challenger.mean_ic.unwrap() > 0.5 && c.champion.mean_ic.unwrap() < 0.3);
        assert!(c.challenger.mean_rank_ic.unwrap() > 0.5);
        assert_eq!(c.champion.count + c.challenger.count, 30 * 40);
        assert_eq!((c.champion.days, c.challenger.days), (30, 30));
        // Mirrored: the champion is kept.
        let c = compare(&simulate(&dates, 1.0, 0.1, 1));
        assert_eq!(c.recommendation, Recommendation::KeepChampion, "{}", c.reason);
        assert!(c.paired.mean_diff.unwrap() < 0.0);
    }

    #[test]
    fn equal_variants_need_more_data() {
        let dates = dates(40);
        // Same process for both: for this seed the difference is not significant (p ≈ 0.5, as it
        // would be for 95% of seeds).
        let c = compare(&simulate(&dates, 0.5, 0.5, 2));
        assert_eq!(c.recommendation, Recommendation::NeedMoreData, "{}", c.reason);
        assert!(c.paired.p_value.unwrap() > SIGNIFICANCE);
        assert!(c.reason.contains("no significant difference"));
        // Identical rows under both variants: all differences are zero and t is undefined.
        let mut same = Vec::new();
        for o in simulate(&dates, 0.5, 0.5, 3).into_iter().filter(|o| o.variant == Variant::Champion) {
            same.push(o);
            same.push(Outcome { variant: Variant::Challenger, ..o });
        }
        let c = compare(&same);
        assert_eq!(c.recommendation, Recommendation::NeedMoreData);
        assert_eq!(c.paired.mean_diff, Some(0.0));
        assert_eq!(c.paired.t_statistic, None);
        assert_eq!(c.champion.mean_ic, c.challenger.mean_ic);
    }

    #[test]
    fn too_few_days_need_more_data() {
        let dates = dates(MIN_PAIRED_DAYS - 1);
        let c = compare(&simulate(&dates, 0.0, 2.0, 4));
        // Overwhelming evidence, but not enough days.
        assert!(c.paired.p_value.unwrap() < 1e-6);
        assert_eq!(c.recommendation, Recommendation::NeedMoreData);
        assert!(c.reason.contains("only 19 days"), "{}", c.reason);
        let c = compare(&[]);
        assert_eq!(c.recommendation, Recommendation::NeedMoreData);
        assert_eq!((c.paired.n, c.paired.mean_diff), (0, None));
        assert_eq!(c.champion.mean_ic, None);
    }

    #[test]
    fn t_test_matches_reference_values() {
        // Student's sleep data (R `datasets::sleep`): extra sleep of drug 2 minus drug 1 per patient.
        // R `t.test(extra ~ group, data = sleep, paired = TRUE)`: t = -4.0621, df = 9,
        // p-value = 0.002833 (group 1 − 2); scipy.stats.ttest_rel(g2, g1) gives
        // statistic 4.062127683382037, pvalue 0.00283289019738427.
        let d = [1.2, 2.4, 1.3, 1.3, 0.0, 1.0, 1.8, 0.8, 4.6, 1.4];
        let t = paired_t_test(&d);
        assert_eq!(t.n, 10);
        assert!((t.mean_diff.unwrap() - 1.58).abs() < 1e-12);
        // By hand: Σ(d − 1.58)² = 13.616, sd = √(13.616 / 9) = 1.2299954832798732.
        assert!((t.std_diff.unwrap() - 1.2299954832798732).abs() < 1e-12);
        assert!((t.t_statistic.unwrap() - 4.062127683382037).abs() < 1e-9);
        assert!((t.p_value.unwrap() - 0.00283289019738427).abs() < 1e-9);
        // The 97.5% quantile of t with 9 df is 2.2621571627982; its two-sided p is 0.05. Negated
        // data flips the sign of t only.
        let neg: Vec<f64> = d.iter().map(|x| -x).collect();
        let t = paired_t_test(&neg);
        assert!((t.t_statistic.unwrap() + 4.062127683382037).abs() < 1e-9);
        assert!((t.p_value.unwrap() - 0.00283289019738427).abs() < 1e-9);
        // Differences mean + (±a alternating) with a = √0.9 have sd exactly 1, so t = mean·√10.
        let mean = 2.2621571627982 / 10f64.sqrt();
        let at_crit: Vec<f64> =
            (0..10).map(|i| mean + if i % 2 == 0 { 0.9f64.sqrt() } else { -0.9f64.sqrt() }).collect();
        let t = paired_t_test(&at_crit);
        assert!((t.std_diff.unwrap() - 1.0).abs() < 1e-12);
        assert!((t.t_statistic.unwrap() - 2.2621571627982).abs() < 1e-9);
        assert!((t.p_value.unwrap() - 0.05).abs() < 1e-9);
        assert_eq!(paired_t_test(&[0.3]).t_statistic, None);
    }

    #[test]
    fn daily_ics_skip_small_and_constant_days_and_feed_the_test() {
        let mut o = Vec::new();
        let mut push = |date: &'static str, variant, rows: &[(f64, f64)]| {
            for &(score, label) in rows {
                o.push(Outcome { date, variant, score, label });
            }
        };
        use Variant::{Challenger, Champion};
        // d1: both defined; champion ties in score (Rank IC by average ranks).
        push("d1", Champion, &[(1.0, 1.0), (2.0, 2.0), (2.0, 3.0), (3.0, 4.0)]);
        push("d1", Challenger, &[(1.0, 2.0), (2.0, 1.0), (3.0, 3.0)]);
        // d2: champion has only 2 complete rows (a NaN label drops one); challenger constant score.
        push("d2", Champion, &[(1.0, 1.0), (2.0, 2.0), (3.0, f64::NAN)]);
        push("d2", Challenger, &[(1.0, 1.0), (1.0, 2.0), (1.0, 3.0)]);
        // d3: both defined.
        push("d3", Champion, &[(3.0, 1.0), (2.0, 2.0), (1.0, 3.0)]);
        push("d3", Challenger, &[(1.0, 1.0), (2.0, 2.0), (4.0, 3.0)]);
        let c = compare(&o);
        // Hand values. d1 champion: scores [1,2,2,3] (mean 2), labels [1,2,3,4] (mean 2.5) →
        // sxy = 3, sxx = 2, syy = 5 → IC 3/√10; ranks [1,2.5,2.5,4] → sxy = 4.5, sxx = 4.5 → 4.5/√22.5.
        let d1_champion = 3.0 / 10f64.sqrt();
        // d1 challenger: scores [1,2,3], labels [2,1,3] → sxy = -1·0 + 0 + 1·1 = 1, sxx = 2, syy = 2 → 0.5.
        // d3 champion: -1; d3 challenger: scores [1,2,4] mean 7/3, labels [1,2,3] → sxy = 3, sxx = 14/3,
        // syy = 2 → 3/√(28/3).
        let d3_challenger = 3.0 / (28.0f64 / 3.0).sqrt();
        let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-12;
        assert!(close(c.daily[0].champion_ic, d1_champion));
        assert!(close(c.daily[0].champion_rank_ic, 4.5 / 22.5f64.sqrt()));
        assert!(close(c.daily[0].challenger_ic, 0.5));
        assert_eq!((c.daily[1].champion_ic, c.daily[1].challenger_ic), (None, None));
        assert!(close(c.daily[2].champion_ic, -1.0));
        assert!(close(c.daily[2].challenger_ic, d3_challenger));
        assert!(close(c.daily[2].challenger_rank_ic, 1.0));
        assert_eq!((c.champion.count, c.champion.days, c.champion.ic_days), (10, 3, 2));
        assert_eq!((c.challenger.count, c.challenger.days, c.challenger.ic_days), (9, 3, 2));
        assert!(close(c.champion.mean_ic, (d1_champion - 1.0) / 2.0));
        assert!(close(c.challenger.mean_rank_ic, (0.5 + 1.0) / 2.0));
        let diffs = [0.5 - d1_champion, d3_challenger + 1.0];
        assert_eq!(c.paired.n, 2);
        assert!(close(c.paired.mean_diff, (diffs[0] + diffs[1]) / 2.0));
        let expected = paired_t_test(&diffs);
        assert_eq!(c.paired, expected);
        assert_eq!(c.recommendation, Recommendation::NeedMoreData);
    }

    #[test]
    fn serialises_with_snake_case_names() {
        let dates = dates(25);
        let c = compare(&simulate(&dates, 0.1, 1.0, 5));
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["recommendation"], "promote_challenger");
        assert_eq!(json["paired"]["n"], 25);
        assert_eq!(json["daily"].as_array().unwrap().len(), 25);
        let o: Outcome<'_> =
            serde_json::from_str(r#"{"date":"2024-01-02","variant":"challenger","score":0.1,"label":-0.2}"#).unwrap();
        assert_eq!(o.variant, Variant::Challenger);
    }
}
