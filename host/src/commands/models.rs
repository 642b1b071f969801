//! `stockops models import FILE.onnx --name N`: registers a model trained elsewhere (LightGBM, XGBoost or
//! scikit-learn through onnxmltools/skl2onnx, or any regression graph tract runs) as a new ready version, so
//! the predict component serves it like its own. The feature names come from `--feature-set` (the model then
//! scores that set's rows from the store), `--feature-names`, or the artifact's own `feature_names` metadata.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use features::store::NamedSet;
use predict::model::{Plan, TractModel};
use prost::Message;
use serde_json::json;
use train_batch::onnx::FEATURE_NAMES_KEY;
use train_batch::onnx::proto::ModelProto;
use train_batch::registry::{self, Artifact, NewVersion, ONNX};

use super::StoreArgs;

/// `stockops models …`.
#[derive(clap::Subcommand)]
pub enum ModelsCommand {
    /// Register an ONNX regression model as a new ready version.
    Import(ImportArgs),
}

/// Arguments of `stockops models import`.
#[derive(clap::Args)]
pub struct ImportArgs {
    #[command(flatten)]
    stores: StoreArgs,
    /// The ONNX file.
    file: PathBuf,
    /// Registry model name.
    #[arg(long)]
    name: String,
    /// The feature set the model's inputs are, in order (e.g. alpha158).
    #[arg(long, conflicts_with = "feature_names")]
    feature_set: Option<String>,
    /// The input feature names, comma-separated, in order.
    #[arg(long, value_delimiter = ',')]
    feature_names: Option<Vec<String>>,
    /// Point this alias at the new version.
    #[arg(long)]
    promote: Option<String>,
}

/// Runs a `models` subcommand.
pub async fn run(command: ModelsCommand) -> Result<()> {
    match command {
        ModelsCommand::Import(args) => import(args).await,
    }
}

async fn import(args: ImportArgs) -> Result<()> {
    registry::check_model_name(&args.name)?;
    if let Some(alias) = &args.promote {
        registry::check_alias(alias)?;
    }
    let bytes = std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let proto = ModelProto::decode(bytes.as_slice()).context("not an ONNX model")?;
    let (names, set) = match (&args.feature_set, &args.feature_names) {
        (Some(set), _) => {
            let named = NamedSet::builtin(set).with_context(|| format!("no built-in feature set {set}"))?;
            (named.names(), Some((set.clone(), named.version())))
        }
        (None, Some(names)) => (names.clone(), None),
        (None, None) => {
            let meta =
                proto.metadata_props.iter().find(|p| p.key == FEATURE_NAMES_KEY).with_context(|| {
                    "the model names no features: pass --feature-set or --feature-names".to_string()
                })?;
            (serde_json::from_str(&meta.value).context("the model's feature_names metadata is not a JSON list")?, None)
        }
    };
    // The model must load and take exactly these features: through a plan when it is one ensemble or linear
    // node, else through tract (which the predict component then runs per request).
    let width = match Plan::from_onnx(&bytes) {
        Ok(plan) => plan.num_features(),
        Err(_) => {
            TractModel::load_with_features(&bytes, names.len()).context("tract cannot run this model")?.num_features()
        }
    };
    if width != names.len() {
        bail!("the model takes {width} features but {} are named", names.len());
    }
    let scored = TractModel::load_with_features(&bytes, width)
        .and_then(|m| m.predict(&vec![0.0; width], width))
        .context("scoring a test row")?;
    let file = args.file.display().to_string();
    let stores = args.stores.open().await?;
    let (name, promote) = (args.name.clone(), args.promote.clone());
    let version = stores
        .blocking(move |db, _| {
            let (set_name, set_version) = set.unwrap_or_default();
            let new = NewVersion {
                name: &name,
                job_id: "",
                feature_set: &set_name,
                feature_set_version: &set_version,
                data_from: "",
                data_to: "",
            };
            let version = registry::begin_version(db, &new)?;
            let card = json!({
                "kind": "imported",
                "source": file,
                "producer": format!("{} {}", proto.producer_name, proto.producer_version),
                "feature_names": names,
                "feature_set": (!set_name.is_empty()).then_some(&set_name),
            });
            let metrics = json!({ "imported": true, "score_of_zero_row": scored.first() });
            registry::complete_version(
                db,
                &name,
                version,
                &json!({}),
                &metrics,
                &card,
                &[Artifact { kind: ONNX, bytes: &bytes }],
            )?;
            if let Some(alias) = &promote {
                registry::set_alias(db, &name, alias, version, "cli", Some("stockops models import --promote"))?;
            }
            Ok(version)
        })
        .await?;
    println!("registered {} v{version}", args.name);
    Ok(())
}
