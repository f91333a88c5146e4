//! The PCI mapping kind's step: one create or update of `/cluster/mapping/pci`.

use serde::{Deserialize, Serialize};

use crate::error::StepError;
use crate::op::{ExecCx, Step};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum PciOp {
    /// Create or update mapping `id` with every node's entry (`map`).
    Mapping {
        id: String,
        create: bool,
        map: Vec<String>,
        description: Option<String>,
    },
}

impl Step for PciOp {
    fn api_calls(&self) -> Vec<String> {
        match self {
            PciOp::Mapping {
                id,
                create,
                map,
                description,
            } => {
                let mut args: Vec<String> = map.iter().map(|m| format!("map={m}")).collect();
                if let Some(d) = description {
                    args.push(format!("description={d}"));
                }
                vec![if *create {
                    format!("POST /cluster/mapping/pci id={id} {}", args.join(" "))
                } else {
                    format!("PUT /cluster/mapping/pci/{id} {}", args.join(" "))
                }]
            }
        }
    }

    async fn run(&self, cx: &ExecCx<'_>) -> Result<(), StepError> {
        match self {
            PciOp::Mapping {
                id,
                create,
                map,
                description,
            } => {
                let what = format!("map PCI device `{id}`");
                if *create {
                    cx.client
                        .pci_mapping_create(id, map, description.as_deref())
                        .await
                } else {
                    cx.client
                        .pci_mapping_update(id, map, description.as_deref())
                        .await
                }
                .map_err(StepError::ctx(what))
            }
        }
    }
}
