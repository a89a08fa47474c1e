//! Renders the CRDs (`ampd crdgen`); `crds/` and the chart hold this output.

use std::path::{Path, PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use super::crd::{AmpWorker, AmpWorkerFleet};

#[derive(Debug, thiserror::Error)]
pub enum CrdgenError {
    #[error("cannot render CRDs: {0}")]
    Render(#[from] serde_saphyr::SerializeError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub fn crds() -> [CustomResourceDefinition; 2] {
    [AmpWorker::crd(), AmpWorkerFleet::crd()]
}

/// All CRDs as one multi-document YAML stream.
pub fn crd_yaml() -> Result<String, CrdgenError> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&crd)?);
    }
    Ok(out)
}

/// One `<name>.yaml` file per CRD (e.g. `ampworkers.amp.io.yaml`).
pub fn write_crds(dir: &Path) -> Result<(), CrdgenError> {
    std::fs::create_dir_all(dir).map_err(|source| CrdgenError::Write {
        path: dir.to_owned(),
        source,
    })?;
    for crd in crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let path = dir.join(format!("{name}.yaml"));
        let yaml = serde_saphyr::to_string(&crd)?;
        std::fs::write(&path, yaml).map_err(|source| CrdgenError::Write { path, source })?;
    }
    Ok(())
}
