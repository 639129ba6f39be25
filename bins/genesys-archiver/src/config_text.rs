//! Configuration-file errors that never echo a value: a TOML error names the line, the key and
//! the problem, but not the text of the line (it may be a secret under a mistyped key).

/// Words that a value quoted by the TOML/serde message stands for; anything else is a name.
const VALUE_MESSAGES: [&str; 4] = [
    "invalid type",
    "invalid value",
    "unknown variant",
    "invalid length",
];

/// Describes `e`, raised while reading `text`, without any value from the file: the line and
/// column, the key on that line (when it is a plain name), and the message with every quoted
/// value replaced by `<hidden>`.
pub(crate) fn describe(text: &str, e: &toml::de::Error) -> String {
    let mut out = String::new();
    if let Some(span) = e.span() {
        let start = span.start.min(text.len());
        let before = &text[..start];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |s| s.chars().count()) + 1;
        out.push_str(&format!("line {line}, column {column}"));
        let line_text = text.lines().nth(line - 1).unwrap_or_default();
        if let Some(key) = key_of(line_text) {
            out.push_str(&format!(", key `{key}`"));
        }
        out.push_str(": ");
    }
    out.push_str(&masked(e.message()));
    out
}

/// The key a `key = value` (or `[table]`) line sets, when it is a plain dotted name.
fn key_of(line: &str) -> Option<&str> {
    let line = line.trim();
    let key = if let Some(rest) = line.strip_prefix('[') {
        rest.trim_start_matches('[').split(']').next()?.trim()
    } else {
        line.split('=').next()?.trim()
    };
    let plain = !key.is_empty()
        && key.len() <= 64
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    plain.then_some(key)
}

/// `message` with the values it quotes hidden. serde quotes a value in `` `...` `` after
/// "invalid type", "unknown variant" and the like, and names (fields, variants we expect) the
/// same way; a quoted token is kept only when it is a name: after "unknown field" (the key the
/// user wrote, when it is a plain name) and in the "expected ..." list, which is ours.
fn masked(message: &str) -> String {
    let first_is_value = VALUE_MESSAGES.iter().any(|m| message.starts_with(m));
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    let mut index = 0;
    let expected_at = message.find("expected").unwrap_or(message.len());
    let mut consumed = 0;
    while let Some(open) = rest.find(['`', '"']) {
        let quote = rest[open..].chars().next().unwrap_or('`');
        let Some(len) = rest[open + 1..].find(quote) else {
            break;
        };
        let token = &rest[open + 1..open + 1 + len];
        out.push_str(&rest[..open]);
        let in_expected = consumed + open >= expected_at;
        let is_name = !token.is_empty()
            && token.len() <= 64
            && token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        let keep = in_expected || (is_name && !(first_is_value && index == 0));
        out.push(quote);
        out.push_str(if keep { token } else { "<hidden>" });
        out.push(quote);
        let advance = open + 1 + len + 1;
        consumed += advance;
        rest = &rest[advance..];
        index += 1;
    }
    out.push_str(rest);
    // A message with no quotes at all can still carry a value after a colon (e.g. a date
    // parser's "input contains invalid characters: ..."); none of toml's do today, but keep
    // anything that looks like a credential URL out regardless.
    if out.contains("://") && out.contains('@') {
        return "the value is not accepted here (not shown: it may hold a credential)".to_string();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::FileConfig;

    fn error_for(text: &str) -> String {
        let e = toml::from_str::<FileConfig>(text).expect_err("the text is invalid");
        describe(text, &e)
    }

    const SECRETS: [&str; 3] = ["hunter2", "S3cretPw", "AKIAEXAMPLEKEY"];

    fn assert_hidden(msg: &str) {
        for s in SECRETS {
            assert!(!msg.contains(s), "{s} leaked in: {msg}");
        }
    }

    #[test]
    fn a_secret_under_a_mistyped_or_unknown_key_is_never_shown() {
        let cases = [
            "[genesys]\nclient_secret = \"hunter2\"\n",
            "[genesys]\nclientsecret = \"hunter2\"\n",
            "[genesys]\nclient_secret_file = 5\nx = \"hunter2\"\n",
            "stat = \"postgres://archiver:S3cretPw@db.example/x\"\n",
            "[store]\naws_secret_access_key = \"hunter2\"\n",
            "[store]\naccess_key = \"AKIAEXAMPLEKEY\"\nsecret_key = \"hunter2\"\n",
            "[index]\nsigning_key_text = \"hunter2\"\n",
            "[ledger]\nurl = \"postgres://archiver:S3cretPw@db/x\"\n",
            "[genesys]\nextra = { password = \"hunter2\" }\n",
        ];
        for text in cases {
            let msg = error_for(text);
            assert_hidden(&msg);
            assert!(msg.contains("line "), "{msg}");
        }
    }

    #[test]
    fn a_secret_given_where_another_type_or_variant_is_expected_is_never_shown() {
        let cases = [
            // A valid key with a value of the wrong kind: serde quotes the value.
            "[genesys]\nanalytics = \"hunter2\"\n",
            "[genesys]\nanalytics = \"postgres://archiver:S3cretPw@db/x\"\n",
            "state = [\"postgres://archiver:S3cretPw@db/x\"]\n",
            "[genesys]\nclient_secret_file = [\"hunter2\"]\n",
            "workers = \"hunter2\"\n",
            // Broken syntax around a secret.
            "[genesys]\nclient_secret = \"hunter2\n",
            "[genesys\nclient_secret = \"hunter2\"\n",
            "state = postgres://archiver:S3cretPw@db/x\n",
        ];
        for text in cases {
            let msg = error_for(text);
            assert_hidden(&msg);
        }
    }

    #[test]
    fn the_error_still_names_the_line_the_key_and_what_is_expected() {
        let msg = error_for("[genesys]\nclient_secret = \"hunter2\"\n");
        assert!(
            msg.starts_with("line 2, column 1, key `client_secret`"),
            "{msg}"
        );
        assert!(msg.contains("unknown field `client_secret`"), "{msg}");
        assert!(msg.contains("`client_secret_file`"), "{msg}");
        let msg = error_for("[genesys]\nanalytics = \"lake\"\n");
        assert!(msg.contains("key `analytics`"), "{msg}");
        assert!(msg.contains("unknown variant `<hidden>`"), "{msg}");
        assert!(msg.contains("`query`"), "{msg}");
    }
}
