//! Renders the CRDs (`ampd crdgen`); `crds/` and the chart hold this output.

use std::path::{Path, PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
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

/// Both CRDs, with descriptions laid out for `kubectl explain` (see [`explain_text`]).
pub fn crds() -> [CustomResourceDefinition; 2] {
    let mut crds = [AmpWorker::crd(), AmpWorkerFleet::crd()];
    for crd in &mut crds {
        for version in &mut crd.spec.versions {
            if let Some(schema) = version
                .schema
                .as_mut()
                .and_then(|s| s.open_api_v3_schema.as_mut())
            {
                unwrap_descriptions(schema);
            }
        }
    }
    crds
}

/// Every description in `schema` and below it through [`explain_text`].
fn unwrap_descriptions(schema: &mut JSONSchemaProps) {
    if let Some(d) = schema.description.as_mut() {
        *d = explain_text(d);
    }
    for child in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        unwrap_descriptions(child);
    }
    match schema.items.as_mut() {
        Some(JSONSchemaPropsOrArray::Schema(item)) => {
            unwrap_descriptions(item);
            // `kubectl explain` prints an array's description and then its items' on the
            // next line: a blank line keeps metav1.Condition's own text from reading as
            // the last item of our list of reasons.
            if let (Some(d), Some(_)) = (schema.description.as_mut(), &item.description) {
                d.push('\n');
            }
        }
        Some(JSONSchemaPropsOrArray::Schemas(items)) => {
            items.iter_mut().for_each(unwrap_descriptions)
        }
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(extra)) = schema.additional_properties.as_mut() {
        unwrap_descriptions(extra);
    }
    for alternatives in [&mut schema.all_of, &mut schema.any_of, &mut schema.one_of] {
        alternatives
            .iter_mut()
            .flatten()
            .for_each(unwrap_descriptions);
    }
}

/// A doc comment as `kubectl explain` should get it. The source wraps comments at ~90
/// columns; kubectl wraps text to the terminal itself but keeps every newline it is
/// given, which would leave a ragged line at each source line break. So the lines of a
/// paragraph are joined with spaces; blank lines (paragraphs) and `- ` list items keep
/// their line breaks.
pub fn explain_text(doc: &str) -> String {
    let mut out = String::with_capacity(doc.len());
    let mut new_paragraph = false;
    for line in doc.lines().map(str::trim) {
        if line.is_empty() {
            new_paragraph = !out.is_empty();
            continue;
        }
        if new_paragraph {
            out.push_str("\n\n");
        } else if line.starts_with("- ") {
            out.push('\n');
        } else if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(line);
        new_paragraph = false;
    }
    out
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

#[cfg(test)]
mod tests {
    use super::explain_text;

    #[test]
    fn paragraph_lines_join_and_list_items_and_paragraphs_keep_their_breaks() {
        let doc = "The worker's conditions, one per type; Ready is the\nsummary. Each type:\n\nRegistered: whether\nthe node id has a row.\n- True WorkerRegistered: the node id\n  has a row.\n- False NotRegistered: no row.\n\n\nHealthy: heartbeating.";
        assert_eq!(
            explain_text(doc),
            "The worker's conditions, one per type; Ready is the summary. Each type:\n\n\
             Registered: whether the node id has a row.\n\
             - True WorkerRegistered: the node id has a row.\n\
             - False NotRegistered: no row.\n\n\
             Healthy: heartbeating."
        );
        assert_eq!(explain_text("one line"), "one line");
        assert_eq!(explain_text("\n\nlead and trail\n\n"), "lead and trail");
    }
}
