//! The template set: embedded defaults, operator overrides, and the one formatter every value
//! passes through on its way into a configuration file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hosting_core::{Error, Result};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Serde, Value, ValueKind};
use minijinja::{AutoEscape, Environment, ErrorKind, Output, State, UndefinedBehavior};
use serde::Serialize;

/// A template's file name and its embedded default text.
pub(crate) type Embedded = (&'static str, &'static str);

macro_rules! embedded {
    ($($konst:ident => $file:literal),+ $(,)?) => {
        $(pub(crate) const $konst: Embedded = ($file, include_str!(concat!("../templates/", $file)));)+
        /// Every template name hosting-web knows, so that a misspelt override is refused
        /// instead of silently ignored.
        const KNOWN: &[&str] = &[$($file),+];
    };
}

embedded! {
    NGINX_SITE => "nginx-site.conf.j2",
    NGINX_MAIN => "nginx-main.conf.j2",
    APACHE_SITE => "apache-site.conf.j2",
    APACHE_MAIN => "apache-main.conf.j2",
    NGINX_SERVICE => "nginx-service.conf.j2",
    NGINX_SERVICE_TEST => "nginx-service-test.conf.j2",
    APACHE_SERVICE => "apache-service.conf.j2",
    APACHE_SERVICE_TEST => "apache-service-test.conf.j2",
    OLS_VHCONF => "openlitespeed-vhconf.conf.j2",
    OLS_VHOST => "openlitespeed-vhost.conf.j2",
    OLS_MAP => "openlitespeed-map.conf.j2",
}

/// The compiled templates one server renders with.
#[derive(Debug)]
pub(crate) struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// Compiles `set`, taking each template from `overrides` when a file of the same name is
    /// there. Any template that does not parse is an [`Error::Invalid`] naming its file.
    pub(crate) fn load(set: &[Embedded], overrides: Option<&Path>) -> Result<Self> {
        let mut env = Environment::new();
        env.set_syntax(syntax()?);
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_formatter(write_checked);
        let mut replaced = match overrides {
            Some(dir) => read_overrides(dir)?,
            None => BTreeMap::new(),
        };
        for &(name, text) in set {
            match replaced.remove(name) {
                Some((path, text)) => env
                    .add_template_owned(name, text)
                    .map_err(|e| invalid(path.display().to_string(), &e))?,
                None => env
                    .add_template(name, text)
                    .map_err(|e| invalid(format!("embedded template {name}"), &e))?,
            }
        }
        Ok(Self { env })
    }

    /// Renders template `name` with `context`. A value that could break out of its place in
    /// the file is refused here, whichever template asked for it.
    pub(crate) fn render(&self, name: &str, context: &impl Serialize) -> Result<String> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(Serde(context)))
            .map_err(|e| invalid(format!("template {name}"), &e))
    }
}

fn syntax() -> Result<SyntaxConfig> {
    SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .keep_trailing_newline(true)
        .build()
        .map_err(|e| invalid("template syntax".to_owned(), &e))
}

fn invalid(field: String, error: &minijinja::Error) -> Error {
    Error::Invalid {
        field: field.into(),
        reason: error.to_string().into(),
    }
}

/// Reads the override templates in `dir`: files named `*.j2`, each of which must be a template
/// name hosting-web knows.
fn read_overrides(dir: &Path) -> Result<BTreeMap<&'static str, (PathBuf, String)>> {
    let unreadable = |path: &Path, e: std::io::Error| Error::Invalid {
        field: path.display().to_string().into(),
        reason: format!("cannot read the template overrides: {e}").into(),
    };
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(|e| unreadable(dir, e))? {
        let path = entry.map_err(|e| unreadable(dir, e))?.path();
        let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
            continue;
        };
        if !file.ends_with(".j2") {
            continue;
        }
        let Some(&name) = KNOWN.iter().find(|&&known| known == file) else {
            return Err(Error::Invalid {
                field: path.display().to_string().into(),
                reason: format!(
                    "is not a template hosting-web knows; overrides must be named one of {}",
                    KNOWN.join(", ")
                )
                .into(),
            });
        };
        let text = std::fs::read_to_string(&path).map_err(|e| unreadable(&path, e))?;
        found.insert(name, (path, text));
    }
    Ok(found)
}

/// Characters a rendered value may hold besides ASCII letters and digits. None of them can end
/// a line, open or close a block, start a comment, quote, or reference a variable in nginx,
/// Apache or OpenLiteSpeed syntax.
const WORD_PUNCTUATION: &str = "._-:/=+,@*[]";

/// Why `text` may not be written into a configuration file, if it may not.
pub(crate) fn word_problem(text: &str) -> Option<String> {
    if text.is_empty() {
        return Some("an empty value cannot be written into a configuration file".to_owned());
    }
    text.chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || WORD_PUNCTUATION.contains(c)))
        .map(|c| {
            format!(
                "{c:?} cannot be written into a configuration file (values hold letters, digits and {WORD_PUNCTUATION} only)"
            )
        })
}

/// The formatter for `{{ ... }}`: strings and numbers only, each checked by [`word_problem`].
/// A template (embedded or an operator's override) can only place checked words into a file,
/// so even a template mistake cannot write a line break or a quote from the data.
fn write_checked(out: &mut Output, _: &mut State, value: &Value) -> Result<(), minijinja::Error> {
    let refuse = |why: String| minijinja::Error::new(ErrorKind::InvalidOperation, why);
    let text = match value.kind() {
        ValueKind::String | ValueKind::Number => value.to_string(),
        kind => {
            return Err(refuse(format!(
                "a {kind} cannot be written into a configuration file; write strings and numbers"
            )));
        }
    };
    if let Some(why) = word_problem(&text) {
        return Err(refuse(why));
    }
    out.write_str(&text)?;
    Ok(())
}
