{{- define "multigres-cluster-controller.rules" -}}
cluster:
  # Start-up waits until the CRDs it serves are established (a watch on each, by name).
  - apiGroups: [apiextensions.k8s.io]
    resources: [customresourcedefinitions]
    verbs: [get, list, watch]
    resourceNames: [multigresclusters.multigres.com, deploymenttemplates.multigres.com, toposervers.multigres.com, cells.multigres.com, tablegroups.multigres.com]
namespaced:
  - apiGroups: [multigres.com]
    resources: [multigresclusters]
    # patch: the annotation that records which databases it registered in the topology.
    verbs: [get, list, watch, patch]
  - apiGroups: [multigres.com]
    resources: [multigresclusters/status]
    verbs: [patch]
  - apiGroups: [multigres.com]
    # patch: the in-use finalizer that keeps a referenced template from being deleted.
    resources: [deploymenttemplates]
    verbs: [get, list, watch, patch]
  - apiGroups: [multigres.com]
    resources: [deploymenttemplates/status]
    verbs: [patch]
  # Children, by server-side apply (patch creates), watched by label; delete prunes the ones no
  # longer desired (only those it controls).
  - apiGroups: [multigres.com]
    resources: [toposervers, cells, tablegroups]
    verbs: [list, watch, patch, delete]
  - apiGroups: [apps]
    resources: [deployments]
    verbs: [list, watch, patch, delete]
  - apiGroups: [""]
    resources: [services]
    verbs: [list, watch, patch, delete]
  # The generated Postgres credentials Secret: created once if missing, never read back or rewritten.
  - apiGroups: [""]
    resources: [secrets]
    verbs: [get, create]
  # Events on the objects it reconciles (kube's recorder creates them and patches a repeated one).
  - apiGroups: [events.k8s.io]
    resources: [events]
    verbs: [create, patch]
leases:
  # Leader election (--leader-elect): the Lease cluster-controller-leader in the release namespace.
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [create]
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [get, update]
    resourceNames: [cluster-controller-leader]
{{- end -}}
{{- define "multigres-cluster-controller.args" -}}
{{- with .Values.statusAggregator.address }}
- --status-aggregator-address={{ . }}
{{- else }}
- --status-aggregator-address=http://multigres-status-aggregator.{{ .Release.Namespace }}.svc:7070
{{- end }}
{{- end -}}
{{- define "multigres-cluster-controller.ports" -}}[]{{- end -}}
