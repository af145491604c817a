//! "Did you mean ...?" for serde's unknown-field and unknown-variant messages.

/// Appends the closest valid name to serde messages such as
/// ``unknown field `lyers`, expected one of `kind`, `layers`, ...``.
/// Other messages come back unchanged.
pub fn did_you_mean(message: &str) -> String {
    let Some(wrong) = ["unknown field `", "unknown variant `"]
        .iter()
        .find_map(|lead| {
            message
                .split_once(lead)
                .and_then(|(_, rest)| rest.split('`').next())
        })
    else {
        return message.to_string();
    };
    let Some((_, expected)) = message.split_once("expected") else {
        return message.to_string();
    };
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let best = candidates
        .iter()
        .map(|c| (strsim::normalized_damerau_levenshtein(wrong, c), *c))
        .filter(|(score, _)| *score >= 0.5)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, name)) => format!("{message} (did you mean `{name}`?)"),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn suggests_the_closest_field() {
        let m = did_you_mean("unknown field `lyers`, expected one of `kind`, `layers`, `heads`");
        assert!(m.ends_with("(did you mean `layers`?)"), "{m}");
        let m = did_you_mean("unknown variant `locl`, expected one of `dense`, `local`, `dilated`");
        assert!(m.ends_with("(did you mean `local`?)"), "{m}");
    }

    #[test]
    fn leaves_other_messages_alone() {
        assert_eq!(did_you_mean("invalid type"), "invalid type");
        let far = "unknown field `zzzzzz`, expected `kind` or `layers`";
        assert_eq!(did_you_mean(far), far);
    }
}
