{{- define "multigres-status-aggregator.rules" -}}
cluster:
  # Start-up waits until the CRDs it serves are established (a watch on each, by name).
  - apiGroups: [apiextensions.k8s.io]
    resources: [customresourcedefinitions]
    verbs: [get, list, watch]
    resourceNames: [multigresclusters.multigres.com, cells.multigres.com, tablegroups.multigres.com, shards.multigres.com, toposervers.multigres.com]
namespaced:
  # Read-only: it watches the tree and the topology, and answers the cluster-controller over gRPC.
  - apiGroups: [multigres.com]
    resources: [multigresclusters, cells, tablegroups, shards, toposervers]
    verbs: [list, watch]
  - apiGroups: [apps]
    resources: [deployments, statefulsets]
    verbs: [list, watch]
  - apiGroups: [""]
    resources: [pods]
    verbs: [list, watch]
{{- end -}}
{{- define "multigres-status-aggregator.args" -}}
- --grpc-addr=0.0.0.0:{{ .Values.ports.grpc }}
{{- end -}}
{{- define "multigres-status-aggregator.ports" -}}
- name: grpc
  containerPort: {{ .Values.ports.grpc }}
{{- end -}}
