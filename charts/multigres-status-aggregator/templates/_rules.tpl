{{- define "multigres-status-aggregator.rules" -}}
cluster:
  # Start-up waits until the CRDs it serves are established (a watch on each, by name).
  - apiGroups: [apiextensions.k8s.io]
    resources: [customresourcedefinitions]
    verbs: [get, list, watch]
    resourceNames: [multigresclusters.multigres.com, toposervers.multigres.com, cells.multigres.com, tablegroups.multigres.com, shards.multigres.com]
namespaced:
  # Read-only: it caches the tree and answers over gRPC; it writes nothing to Kubernetes.
  - apiGroups: [multigres.com]
    resources: [multigresclusters, toposervers, cells, tablegroups, shards]
    verbs: [list, watch]
  - apiGroups: [apps]
    resources: [deployments]
    verbs: [list, watch]
{{- end -}}
{{- define "multigres-status-aggregator.args" -}}
- --grpc-addr=0.0.0.0:{{ .Values.ports.grpc }}
{{- if .Values.controllerHealth.enabled }}
{{- $ns := .Release.Namespace }}
{{- $port := .Values.controllerHealth.port }}
{{- $endpoints := list }}
{{- range .Values.controllerHealth.controllers }}
{{- $endpoints = append $endpoints (printf "%s=multigres-%s.%s.svc:%v" . . $ns $port) }}
{{- end }}
- --controller-health-endpoints={{ join "," $endpoints }}
{{- end }}
{{- if .Values.tls.secretName }}
- --tls-cert=/etc/multigres/tls/tls.crt
- --tls-key=/etc/multigres/tls/tls.key
{{- if .Values.tls.clientAuth }}
- --tls-client-ca=/etc/multigres/tls/ca.crt
{{- end }}
{{- end }}
{{- end -}}
{{- define "multigres-status-aggregator.ports" -}}
- name: grpc
  containerPort: {{ .Values.ports.grpc }}
{{- end -}}
