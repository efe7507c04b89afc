{{/*
Everything a component chart renders, in one call:

  {{ include "multigres-common.all" (dict "ctx" . "component" "cell-controller" "rules" (include "multigres-cell-controller.rules" .)) }}

`component` is the binary's name; resources are named `multigres-<component>` (or
`.Values.fullnameOverride`). `rules` is YAML with two lists:
  cluster:    rules on cluster-scoped resources (always a ClusterRole),
  namespaced: rules on namespaced resources (a ClusterRole, or a Role in the watched namespace
              when `rbac.namespaced` is true),
and optionally `leases`: rules on coordination.k8s.io Leases, always a Role in the lease namespace.
*/}}
{{- define "multigres-common.all" -}}
{{- $args := . -}}
{{ include "multigres-common.serviceAccount" $args }}
{{ include "multigres-common.rbac" $args }}
{{ include "multigres-common.deployment" $args }}
{{ include "multigres-common.pdb" $args }}
{{ include "multigres-common.service" $args }}
{{ include "multigres-common.serviceMonitor" $args }}
{{- end -}}

{{- define "multigres-common.fullname" -}}
{{- $v := .ctx.Values -}}
{{- default (printf "multigres-%s" .component) $v.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "multigres-common.selectorLabels" -}}
app.kubernetes.io/name: {{ printf "multigres-%s" .component }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- end -}}

{{- define "multigres-common.labels" -}}
{{ include "multigres-common.selectorLabels" . }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: multigres-operator
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | default .ctx.Chart.Version | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/*
The operator's topology CA Secret the controller mounts (the deployment's topologyCaSecret), from
the umbrella chart's global.topologyTls; empty when it is off or absent (a component chart installed
on its own, unless given global.topologyTls). Takes the component chart's root context.
*/}}
{{- define "multigres-common.topologyCaSecret" -}}
{{- $tls := (.Values.global).topologyTls | default dict -}}
{{- if $tls.enabled -}}
{{- $tls.caSecret | default "multigres-topology-ca" -}}
{{- end -}}
{{- end -}}

{{/*
The client certificate for external etcds that speak TLS (the deployment's externalTopologySecret),
from the umbrella chart's global.topologyTls.externalClientSecret; empty when unset.
*/}}
{{- define "multigres-common.externalTopologySecret" -}}
{{- $tls := (.Values.global).topologyTls | default dict -}}
{{- $tls.externalClientSecret | default "" -}}
{{- end -}}

{{/* The namespace the controller watches: none (all) unless rbac.namespaced. */}}
{{- define "multigres-common.watchNamespace" -}}
{{- if .ctx.Values.rbac.namespaced -}}
{{- default .ctx.Release.Namespace .ctx.Values.rbac.watchNamespace -}}
{{- end -}}
{{- end -}}

{{- define "multigres-common.serviceAccountName" -}}
{{- default (include "multigres-common.fullname" .) .ctx.Values.serviceAccount.name -}}
{{- end -}}
