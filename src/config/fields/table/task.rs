//! The `[task]` table's entries of the field registry, in file order.

use super::super::{Access, Field};
use super::BASE;
use crate::tasks::TaskKind;

/// `task.kind`
pub static TASK_KIND: Field = Field {
    path: "task.kind",
    label: "task kind",
    help: "The synthetic task (or next-character prediction on a text file)",
    access: Access::Choice {
        names: || TaskKind::ALL.iter().map(|k| k.name()).collect(),
        get: |s| s.task.kind.name(),
        set: |s, name| {
            if let Some(k) = TaskKind::ALL.into_iter().find(|k| k.name() == name) {
                s.task.kind = k;
            }
        },
    },
    ..BASE
};

/// `task.seq_len`
pub static SEQ_LEN: Field = Field {
    path: "task.seq_len",
    label: "seq_len",
    help: "Tokens per sequence",
    unit: "tokens",
    access: int!(task.seq_len, 2, 8192),
    ..BASE
};

/// `task.vocab`
pub static VOCAB: Field = Field {
    path: "task.vocab",
    label: "vocab",
    help: "Distinct tokens, including any filler or marker tokens (each task needs a few more than it has answers); markov: the number of states (2 to 64)",
    unit: "tokens",
    access: int!(task.vocab, 2, 65_536),
    bounds_why: "two vocab x d_model matrices are built; the tasks use small alphabets",
    ..BASE
};

/// `task.distance`
pub static DISTANCE: Field = Field {
    path: "task.distance",
    label: "distance",
    help: "Recall and induction: how far back the answer lies",
    unit: "tokens",
    access: int!(task.distance, 1, u64::MAX),
    applies: |s| matches!(s.task.kind, TaskKind::Recall | TaskKind::Induction),
    // The weights do not depend on it: a resumed or forked run may change it.
    fork: true,
    ..BASE
};

/// `task.pairs`
pub static PAIRS: Field = Field {
    path: "task.pairs",
    label: "pairs",
    help: "MQAR and zoology_mqar: key-value pairs per sequence",
    access: int!(task.pairs, 1, u64::MAX),
    applies: |s| matches!(s.task.kind, TaskKind::Mqar | TaskKind::ZoologyMqar),
    ..BASE
};

/// `task.tokens`
pub static TOKENS: Field = Field {
    path: "task.tokens",
    label: "tokens",
    help: "Selective copy: content tokens to copy",
    unit: "tokens",
    access: int!(task.tokens, 1, u64::MAX),
    applies: |s| s.task.kind == TaskKind::SelectiveCopy,
    ..BASE
};

/// `task.file`
pub static FILE: Field = Field {
    path: "task.file",
    label: "file",
    help: "Text: a UTF-8 file, relative to the experiment file (text/fsf-licenses.txt is built in)",
    access: Access::Structured,
    applies: |s| s.task.kind == TaskKind::Text,
    ..BASE
};

/// `task.power_a`
pub static POWER_A: Field = Field {
    path: "task.power_a",
    label: "power_a",
    help: "zoology_mqar: the power law of the query gaps, as Zoology's train_power_a: gap g (0 to (seq_len - 2 x pairs) / 2 - 1, the query at 2 x pairs + 2g) is drawn with weight (g + 1)^(power_a - 1), without replacement; 1 is uniform, the default 0.01 favours short gaps (weight about 1 / (g + 1))",
    access: float!(task.power_a, 0.0, open_min = true, 1.0),
    bounds_why: "Zoology's power law: 1 is uniform, and smaller values favour shorter gaps",
    applies: |s| s.task.kind == TaskKind::ZoologyMqar,
    // The weights do not depend on it: a resumed or forked run may change it.
    fork: true,
    ..BASE
};

/// `task.random_fill`
pub static RANDOM_FILL: Field = Field {
    path: "task.random_fill",
    label: "random_fill",
    help: "zoology_mqar: fill the positions after the pairs that hold no query with uniformly random tokens, as Zoology's random_non_queries (false: 0)",
    access: Access::Bool {
        get: |s| s.task.random_fill,
        set: |s, v| s.task.random_fill = v,
    },
    applies: |s| s.task.kind == TaskKind::ZoologyMqar,
    // The weights do not depend on it: a resumed or forked run may change it.
    fork: true,
    ..BASE
};

/// `task.vary_distance`
pub static VARY_DISTANCE: Field = Field {
    path: "task.vary_distance",
    label: "vary_distance",
    help: "Induction: put the trigger and its value at a random distance from 1 to task.distance (false: at task.distance), so no position alone finds it",
    access: Access::Bool {
        get: |s| s.task.vary_distance,
        set: |s, v| s.task.vary_distance = v,
    },
    applies: |s| s.task.kind == TaskKind::Induction,
    // The weights do not depend on it: a resumed or forked run may change it.
    fork: true,
    ..BASE
};
