//! Catalog URLs: which backend, how to open it, and how to print it safely.

/// The database behind a catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// How to open the database named by a catalog URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) backend: Backend,
    /// The URL handed to sqlx.
    pub(crate) url: String,
    /// A SQLite database in memory: each connection would see its own.
    pub(crate) in_memory: bool,
}

/// Parses a catalog URL; `None` for an unsupported scheme.
///
/// A SQLite file URL without a `mode` parameter gets `mode=rwc`, so the file
/// is created when missing.
pub(crate) fn target(url: &str) -> Option<Target> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        return Some(Target {
            backend: Backend::Postgres,
            url: url.to_owned(),
            in_memory: false,
        });
    }
    if !lower.starts_with("sqlite:") {
        return None;
    }
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let params: Vec<(&str, &str)> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    let in_memory = base.ends_with(":memory:")
        || base == "sqlite:"
        || base == "sqlite://"
        || params.iter().any(|&(k, v)| k == "mode" && v == "memory");
    let has_mode = params.iter().any(|&(k, _)| k == "mode");
    let url = if in_memory || has_mode {
        url.to_owned()
    } else if query.is_some_and(|q| !q.is_empty()) {
        format!("{url}&mode=rwc")
    } else {
        format!("{base}?mode=rwc")
    };
    Some(Target {
        backend: Backend::Sqlite,
        url,
        in_memory,
    })
}

/// `url` with any password replaced by `***`: the user-info password and the
/// value of `password`-like query parameters.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let (head, rest) = url.split_at(scheme_end);
    let mut out = String::with_capacity(url.len());
    out.push_str(head);
    // The last '@' ends the user info; an '@' elsewhere only makes us hide
    // more than needed.
    let after_userinfo = match rest.rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            match userinfo.split_once(':') {
                Some((user, _password)) => {
                    out.push_str(user);
                    out.push_str(":***");
                }
                None => out.push_str(userinfo),
            }
            out.push('@');
            &rest[at + 1..]
        }
        None => rest,
    };
    match after_userinfo.split_once('?') {
        None => out.push_str(after_userinfo),
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.to_ascii_lowercase().contains("password") => {
                        format!("{k}=***")
                    }
                    _ => p.to_owned(),
                })
                .collect();
            out.push_str(&params.join("&"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact("postgres://u:se/c@ret@h/db?x=1"), "postgres://u:***@h/db?x=1");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact("postgres://h/db?user=u&password=secret&sslpassword=x"),
            "postgres://h/db?user=u&password=***&sslpassword=***"
        );
        assert_eq!(redact("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(redact("sqlite:///tmp/a.db?mode=rwc"), "sqlite:///tmp/a.db?mode=rwc");
    }

    #[test]
    fn targets() {
        let t = target("sqlite:///tmp/a.db").unwrap();
        assert_eq!(
            (t.backend, t.url.as_str(), t.in_memory),
            (Backend::Sqlite, "sqlite:///tmp/a.db?mode=rwc", false)
        );
        let t = target("sqlite:///tmp/a.db?mode=rwc").unwrap();
        assert_eq!(t.url, "sqlite:///tmp/a.db?mode=rwc");
        let t = target("sqlite:///tmp/a.db?cache=private").unwrap();
        assert_eq!(t.url, "sqlite:///tmp/a.db?cache=private&mode=rwc");
        let t = target("sqlite::memory:").unwrap();
        assert!(t.in_memory);
        assert_eq!(t.url, "sqlite::memory:");
        assert!(target("sqlite://?mode=memory").unwrap().in_memory);
        let t = target("postgresql://u:p@h/db").unwrap();
        assert_eq!(t.backend, Backend::Postgres);
        assert!(target("mysql://h/db").is_none());
    }
}
