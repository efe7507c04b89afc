//! The PromQL the operator ships: the alerts of the PrometheusRule and the Grafana dashboards of the
//! umbrella chart (charts/multigres-operator/dashboards, valid JSON). Every expression is valid
//! PromQL and every metric it reads one that exists (src/build/known_metrics.txt: the pinned
//! Multigres' catalog and real /metrics, the postgres_exporter's, the operator's own, Prometheus' and
//! kube-state-metrics'). No control plane.

use promql_parser::parser::{self, Expr};

const DASHBOARDS: [(&str, &str); 2] = [
    (
        "operator.json",
        include_str!("../../../charts/multigres-operator/dashboards/operator.json"),
    ),
    (
        "cluster.json",
        include_str!("../../../charts/multigres-operator/dashboards/cluster.json"),
    ),
];

fn known_metrics() -> Vec<&'static str> {
    include_str!("../src/build/known_metrics.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

fn metric_names(expr: &Expr, out: &mut Vec<String>) {
    match expr {
        Expr::VectorSelector(v) => out.extend(v.name.clone()),
        Expr::MatrixSelector(m) => out.extend(m.vs.name.clone()),
        Expr::Aggregate(a) => {
            metric_names(&a.expr, out);
            if let Some(p) = &a.param {
                metric_names(p, out);
            }
        }
        Expr::Unary(u) => metric_names(&u.expr, out),
        Expr::Binary(b) => {
            metric_names(&b.lhs, out);
            metric_names(&b.rhs, out);
        }
        Expr::Paren(p) => metric_names(&p.expr, out),
        Expr::Subquery(s) => metric_names(&s.expr, out),
        Expr::Call(c) => c.args.args.iter().for_each(|a| metric_names(a, out)),
        Expr::Extension(_) | Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
    }
}

/// Every metric `expr` reads, after checking that it parses (`what` names it in failures).
fn reads(what: &str, expr: &str, known: &[&str]) {
    let parsed = parser::parse(expr).unwrap_or_else(|e| panic!("{what}: {e}\n{expr}"));
    let mut names = Vec::new();
    metric_names(&parsed, &mut names);
    assert!(!names.is_empty(), "{what}: {expr} reads no metric");
    for name in names {
        assert!(
            known.contains(&name.as_str()),
            "{what}: unknown metric {name}"
        );
    }
}

#[test]
fn every_alert_parses_and_reads_known_metrics() {
    let mut cluster = multigres_api::MultigresCluster::new("prod", Default::default());
    cluster.metadata.namespace = Some("db".into());
    let rule =
        multigres_cluster_controller::build::prometheus_rule(&cluster).expect("on by default");
    let known = known_metrics();
    for r in &rule.spec.groups[0].rules {
        reads(&r.alert, &r.expr, &known);
    }
}

/// Grafana's template variables, replaced by a value as Grafana would before sending the query.
fn without_variables(query: &str) -> String {
    ["$namespace", "$cluster", "$controller"]
        .iter()
        .fold(query.to_string(), |q, v| q.replace(v, "x"))
}

#[test]
fn every_dashboard_query_parses_and_reads_known_metrics() {
    let known = known_metrics();
    for (file, text) in DASHBOARDS {
        let dashboard: serde_json::Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("{file}: not JSON: {e}"));
        assert!(dashboard["uid"].is_string() && dashboard["title"].is_string());
        let panels = dashboard["panels"].as_array().expect("panels");
        assert!(!panels.is_empty(), "{file}: no panels");
        let mut queries = 0;
        for panel in panels {
            for target in panel["targets"].as_array().expect("targets") {
                let expr = target["expr"].as_str().expect("expr");
                let what = format!("{file} {:?}", panel["title"]);
                reads(&what, &without_variables(expr), &known);
                queries += 1;
            }
        }
        assert!(queries >= panels.len());
        // Variables query real labels too.
        for variable in dashboard["templating"]["list"].as_array().unwrap() {
            if variable["type"] == "query" {
                let query = variable["query"]["query"].as_str().unwrap();
                let inner = query
                    .strip_prefix("label_values(")
                    .and_then(|q| q.rsplit_once(','))
                    .map(|(selector, _)| selector)
                    .expect("label_values(<selector>, <label>)");
                parser::parse(&without_variables(inner)).expect("variable selector parses");
            }
        }
    }
}
