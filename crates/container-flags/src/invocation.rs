//! Which Multigres binary a container runs, and the flags it passes: from `command` + `args` after
//! Kubernetes' `$(VAR)` expansion, or from a `sh -c` script whose command word is the binary.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Container;

use crate::help::FlagSet;

/// The binaries the generated pods run, as their `--help` was recorded.
pub const BINARIES: &[&str] = &[
    "multiadmin",
    "multigateway",
    "multiorch",
    "multipooler",
    "pgctld",
];

/// One flag as passed: `--name value`, `--name=value` or a boolean `--name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassedFlag {
    pub name: String,
    pub value: Option<String>,
}

/// A Multigres binary's command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    pub binary: String,
    /// `server` for `pgctld server`; empty for binaries without subcommands.
    pub subcommand: Option<String>,
    /// Everything after the binary (and subcommand).
    pub argv: Vec<String>,
}

impl Invocation {
    /// Recorded help's name: `pgctld-server`, `multipooler`.
    pub fn help_name(&self) -> String {
        match &self.subcommand {
            Some(sub) => format!("{}-{sub}", self.binary),
            None => self.binary.clone(),
        }
    }
}

fn multigres_binary(word: &str) -> Option<&'static str> {
    let base = word.rsplit('/').next().unwrap_or(word);
    BINARIES.iter().copied().find(|b| *b == base)
}

/// Kubernetes' `$(VAR)` expansion in command and args; unknown references stay as written.
pub fn expand(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("$(") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        match after.find(')') {
            Some(end) if vars.contains_key(&after[..end]) => {
                out.push_str(&vars[&after[..end]]);
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str("$(");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Splits a shell script into simple commands of words (quotes removed; no expansions).
fn shell_commands(script: &str) -> Vec<Vec<String>> {
    let mut commands = vec![Vec::new()];
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    let mut chars = script.chars().peekable();
    let end_word = |word: &mut Option<String>, commands: &mut Vec<Vec<String>>| {
        if let Some(w) = word.take() {
            commands.last_mut().expect("never empty").push(w);
        }
    };
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_with(String::new).push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, ';' | '\n' | '&' | '|') => {
                end_word(&mut word, &mut commands);
                if chars.peek() == Some(&c) {
                    chars.next();
                }
                commands.push(Vec::new());
            }
            (None, c) if c.is_whitespace() => end_word(&mut word, &mut commands),
            (None, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    end_word(&mut word, &mut commands);
    commands.retain(|c| !c.is_empty());
    commands
}

/// The Multigres binary `container` runs, if any. `vars` expands `$(VAR)` references.
pub fn of_container(container: &Container, vars: &BTreeMap<String, String>) -> Option<Invocation> {
    let mut argv: Vec<String> = container
        .command
        .iter()
        .flatten()
        .chain(container.args.iter().flatten())
        .map(|a| expand(a, vars))
        .collect();
    if argv.is_empty() {
        return None;
    }
    let shell = argv[0].rsplit('/').next().unwrap_or_default();
    if matches!(shell, "sh" | "bash") && argv.get(1).map(String::as_str) == Some("-c") {
        let script = argv.get(2).cloned().unwrap_or_default();
        // The command word: after `exec` and any `NAME=value` assignments.
        let assignment = |w: &String| w.contains('=') && !w.starts_with('-');
        argv = shell_commands(&script).into_iter().find_map(|words| {
            let start = words.iter().position(|w| w != "exec" && !assignment(w))?;
            multigres_binary(&words[start]).map(|_| words[start..].to_vec())
        })?;
    }
    let binary = multigres_binary(&argv[0])?.to_string();
    let mut rest = argv.split_off(1);
    // Only pgctld has subcommands; cobra takes the first word that is not a flag.
    let subcommand = (binary == "pgctld")
        .then(|| rest.iter().position(|a| !a.starts_with('-')))
        .flatten()
        .map(|i| rest.remove(i));
    Some(Invocation {
        binary,
        subcommand,
        argv: rest,
    })
}

/// The flags and positional words of `argv`, read the way pflag reads them against `known`:
/// `--name=value`; `--name value` when `--name` takes a value; `-x` shorthands; `--` ends flags.
/// A flag `known` does not define takes the next word as its value unless that starts with `-`.
pub fn flags(argv: &[String], known: &FlagSet) -> (Vec<PassedFlag>, Vec<String>) {
    let mut flags = Vec::new();
    let mut positional = Vec::new();
    let mut words = argv.iter();
    while let Some(word) = words.next() {
        if word == "--" {
            positional.extend(words.by_ref().cloned());
            break;
        }
        let name_value = if let Some(long) = word.strip_prefix("--") {
            long.split_once('=')
                .map(|(n, v)| (n.to_string(), Some(v.to_string())))
                .unwrap_or_else(|| (long.to_string(), None))
        } else if let Some(short) = word.strip_prefix('-').filter(|s| !s.is_empty()) {
            let mut chars = short.chars();
            let letter = chars.next().expect("not empty");
            let name = known
                .short
                .get(&letter)
                .cloned()
                .unwrap_or_else(|| format!("-{letter}"));
            let inline = chars.as_str().trim_start_matches('=');
            (name, (!inline.is_empty()).then(|| inline.to_string()))
        } else {
            positional.push(word.clone());
            continue;
        };
        let (name, mut value) = name_value;
        let wants_value = if known.defines(&name) {
            known.takes_value(&name)
        } else {
            words
                .as_slice()
                .first()
                .is_some_and(|w| !w.starts_with('-'))
        };
        if value.is_none() && wants_value {
            value = words.next().cloned();
        }
        flags.push(PassedFlag { name, value });
    }
    (flags, positional)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::help;

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    fn container(command: &[&str], args: &[&str]) -> Container {
        Container {
            name: "c".into(),
            command: Some(strings(command)),
            args: Some(strings(args)),
            ..Default::default()
        }
    }

    #[test]
    fn reads_the_binary_and_the_pgctld_subcommand() {
        let vars = BTreeMap::from([("POD_NAME".to_string(), "pod-0".to_string())]);
        let pooler = of_container(
            &container(&["multipooler"], &["--service-id=$(POD_NAME)"]),
            &vars,
        )
        .unwrap();
        assert_eq!(pooler.binary, "multipooler");
        assert_eq!(pooler.subcommand, None);
        assert_eq!(pooler.argv, ["--service-id=pod-0"]);

        let pgctld = of_container(
            &container(&["/usr/local/bin/pgctld", "server"], &["--pg-port", "5432"]),
            &vars,
        )
        .unwrap();
        assert_eq!(pgctld.help_name(), "pgctld-server");
        assert_eq!(pgctld.argv, ["--pg-port", "5432"]);
        assert!(of_container(&container(&["etcd"], &["--name=x"]), &vars).is_none());
    }

    #[test]
    fn finds_the_binary_in_a_shell_script_but_not_as_an_argument() {
        let vars = BTreeMap::new();
        let copy = container(
            &["sh", "-c", "cp \"$(command -v pgctld)\" /bin/pgctld"],
            &[],
        );
        assert!(of_container(&copy, &vars).is_none());
        let wrapped = container(
            &[
                "sh",
                "-c",
                "mkdir -p /x && exec A=1 multiorch --cell 'a b'; echo done",
            ],
            &[],
        );
        let inv = of_container(&wrapped, &vars).unwrap();
        assert_eq!(inv.binary, "multiorch");
        assert_eq!(inv.argv, ["--cell", "a b"]);
    }

    #[test]
    fn expands_known_references_only() {
        let vars = BTreeMap::from([("A".to_string(), "1".to_string())]);
        assert_eq!(expand("x$(A)y$(B)z$(", &vars), "x1y$(B)z$(");
    }

    #[test]
    fn both_spellings_booleans_and_shorthands() {
        let known = help::parse(
            "Flags:\n      --cell string   c\n      --pprof-http   b\n  -p, --pg-port int   p\n",
        );
        let (flags, positional) = flags(
            &strings(&[
                "--cell",
                "z1",
                "--pprof-http",
                "extra",
                "--cell=z2",
                "-p",
                "5432",
                "--nope",
                "v",
                "--",
                "-x",
            ]),
            &known,
        );
        let pairs: Vec<_> = flags
            .iter()
            .map(|f| (f.name.as_str(), f.value.as_deref()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("cell", Some("z1")),
                ("pprof-http", None),
                ("cell", Some("z2")),
                ("pg-port", Some("5432")),
                ("nope", Some("v")),
            ]
        );
        assert_eq!(positional, ["extra", "-x"]);
    }
}
