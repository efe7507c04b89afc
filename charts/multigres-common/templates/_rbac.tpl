{{/*
ClusterRole(s) and Role(s) with their bindings. See "multigres-common.all" for the shape of .rules.
*/}}
{{- define "multigres-common.rbac" -}}
{{- if .ctx.Values.rbac.create }}
{{- $rules := fromYaml .rules -}}
{{- $name := include "multigres-common.fullname" . -}}
{{- $sa := include "multigres-common.serviceAccountName" . -}}
{{- $namespaced := .ctx.Values.rbac.namespaced -}}
{{- $watchNs := include "multigres-common.watchNamespace" . -}}
{{- $clusterRules := $rules.cluster | default list -}}
{{- if not $namespaced }}
{{- $clusterRules = concat $clusterRules ($rules.namespaced | default list) -}}
{{- end }}
{{- if $clusterRules }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ $name }}
  labels:
    {{- include "multigres-common.labels" . | nindent 4 }}
rules:
  {{- toYaml $clusterRules | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ $name }}
  labels:
    {{- include "multigres-common.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ $name }}
subjects:
  - kind: ServiceAccount
    name: {{ $sa }}
    namespace: {{ .ctx.Release.Namespace }}
{{- end }}
{{- if and $namespaced $rules.namespaced }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ $name }}
  namespace: {{ $watchNs }}
  labels:
    {{- include "multigres-common.labels" . | nindent 4 }}
rules:
  {{- toYaml $rules.namespaced | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ $name }}
  namespace: {{ $watchNs }}
  labels:
    {{- include "multigres-common.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ $name }}
subjects:
  - kind: ServiceAccount
    name: {{ $sa }}
    namespace: {{ .ctx.Release.Namespace }}
{{- end }}
{{- if $rules.leases }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ $name }}-leases
  namespace: {{ .ctx.Release.Namespace }}
  labels:
    {{- include "multigres-common.labels" . | nindent 4 }}
rules:
  {{- toYaml $rules.leases | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ $name }}-leases
  namespace: {{ .ctx.Release.Namespace }}
  labels:
    {{- include "multigres-common.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ $name }}-leases
subjects:
  - kind: ServiceAccount
    name: {{ $sa }}
    namespace: {{ .ctx.Release.Namespace }}
{{- end }}
{{- end }}
{{- end -}}
