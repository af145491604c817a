//! Command-line values that may hold a credential (`--token`, `--backend
//! remote:TOKEN@ADDRESS`), parsed without ever quoting the value back: clap's own
//! error for a rejected value prints it ("invalid value 'VALUE' for ..."), which would
//! put a mistyped token into terminals, shell scrollback and CI logs.

use std::ffi::OsStr;

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;

/// A `value_parser` that turns text into `T` with `parse` and, when it refuses,
/// reports the flag and the reason only (`parse`'s reason must not quote secrets
/// either; [`redact_secrets`] helps where a reason may echo its input).
#[derive(Clone, Copy)]
pub(super) struct SecretArg<T>(pub(super) fn(&str) -> Result<T, String>);

impl<T: Clone + Send + Sync + 'static> TypedValueParser for SecretArg<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let flag = arg
            .and_then(clap::Arg::get_long)
            .map_or_else(|| "a value".to_string(), |long| format!("--{long}"));
        let refuse = |kind: ErrorKind, why: &str| {
            clap::Error::raw(
                kind,
                format!("{flag} is refused (its value is not shown): {why}\n"),
            )
            .with_cmd(cmd)
        };
        let text = value
            .to_str()
            .ok_or_else(|| refuse(ErrorKind::InvalidUtf8, "it is not UTF-8"))?;
        (self.0)(text).map_err(|why| refuse(ErrorKind::ValueValidation, &why))
    }
}

/// `message` with every token that `value` (a `--backend` value) may carry replaced by
/// `<token>`: the text before the `@` of each `remote:` address that is not an Iroh
/// address (`iroh:<id>@host:port` names a node, not a secret).
pub(super) fn redact_secrets(message: &str, value: &str) -> String {
    let Some(rest) = value.strip_prefix("remote:") else {
        return message.to_string();
    };
    let mut out = message.to_string();
    for part in rest.split(',').map(str::trim) {
        if part.starts_with("iroh:") {
            continue;
        }
        if let Some((secret, _)) = part.split_once('@')
            && !secret.is_empty()
        {
            out = out.replace(secret, "<token>");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_before_an_address_are_hidden() {
        let value = "remote:s3cret@http://host:3000,iroh:abc@10.0.0.1:4";
        let message = "unknown backend remote:s3cret@http://host:3000";
        let redacted = redact_secrets(message, value);
        assert!(!redacted.contains("s3cret"), "{redacted}");
        assert!(redacted.contains("<token>@http://host:3000"), "{redacted}");
        assert_eq!(redact_secrets("iroh:abc", value), "iroh:abc");
    }
}
