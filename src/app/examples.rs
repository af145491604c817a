//! The shipped experiment files, built into the binary so the window offers them
//! wherever it runs.

/// One shipped experiment.
#[derive(Clone, Copy, Debug)]
pub struct ShippedExperiment {
    /// File name under `experiments/`.
    pub file: &'static str,
    /// Its TOML text.
    pub text: &'static str,
}

/// Every shipped experiment, in menu order.
pub const SHIPPED: [ShippedExperiment; 17] = [
    ShippedExperiment {
        file: "dense_vs_local.toml",
        text: include_str!("../../experiments/dense_vs_local.toml"),
    },
    ShippedExperiment {
        file: "distance_sweep.toml",
        text: include_str!("../../experiments/distance_sweep.toml"),
    },
    ShippedExperiment {
        file: "block_boundaries.toml",
        text: include_str!("../../experiments/block_boundaries.toml"),
    },
    ShippedExperiment {
        file: "sparse_transformer.toml",
        text: include_str!("../../experiments/sparse_transformer.toml"),
    },
    ShippedExperiment {
        file: "longformer_global.toml",
        text: include_str!("../../experiments/longformer_global.toml"),
    },
    ShippedExperiment {
        file: "per_layer_mix.toml",
        text: include_str!("../../experiments/per_layer_mix.toml"),
    },
    ShippedExperiment {
        file: "transformer_vs_lstm.toml",
        text: include_str!("../../experiments/transformer_vs_lstm.toml"),
    },
    ShippedExperiment {
        file: "long_sequences.toml",
        text: include_str!("../../experiments/long_sequences.toml"),
    },
    ShippedExperiment {
        file: "seeds_sweep.toml",
        text: include_str!("../../experiments/seeds_sweep.toml"),
    },
    ShippedExperiment {
        file: "mixers.toml",
        text: include_str!("../../experiments/mixers.toml"),
    },
    ShippedExperiment {
        file: "mqar_reach.toml",
        text: include_str!("../../experiments/mqar_reach.toml"),
    },
    ShippedExperiment {
        file: "text_context.toml",
        text: include_str!("../../experiments/text_context.toml"),
    },
    ShippedExperiment {
        file: "length_generalisation.toml",
        text: include_str!("../../experiments/length_generalisation.toml"),
    },
    ShippedExperiment {
        file: "reference/zoology_mqar.toml",
        text: include_str!("../../experiments/reference/zoology_mqar.toml"),
    },
    ShippedExperiment {
        file: "reference/induction_layers.toml",
        text: include_str!("../../experiments/reference/induction_layers.toml"),
    },
    ShippedExperiment {
        file: "reference/markov_phases.toml",
        text: include_str!("../../experiments/reference/markov_phases.toml"),
    },
    ShippedExperiment {
        file: "reference/mamba_selective_copy.toml",
        text: include_str!("../../experiments/reference/mamba_selective_copy.toml"),
    },
];

/// The experiment open on first launch.
pub const DEFAULT: ShippedExperiment = SHIPPED[0];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_is_valid_and_every_shipped_file_is_built_in() {
        for e in SHIPPED {
            let experiment = crate::config::Experiment::from_toml(e.text).expect(e.file);
            experiment.plan().expect(e.file);
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
        let count = |dir: std::path::PathBuf| {
            std::fs::read_dir(dir)
                .expect("experiments/")
                .filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "toml"))
                })
                .count()
        };
        let files = count(dir.clone()) + count(dir.join("reference"));
        assert_eq!(files, SHIPPED.len(), "add new experiment files to SHIPPED");
    }
}
