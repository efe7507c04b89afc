{{- define "multigres-cell-controller.rules" -}}
cluster:
  # Start-up waits until the CRDs it serves are established (a watch on each, by name).
  - apiGroups: [apiextensions.k8s.io]
    resources: [customresourcedefinitions]
    verbs: [get, list, watch]
    resourceNames: [cells.multigres.com, toposervers.multigres.com]
namespaced:
  - apiGroups: [multigres.com]
    resources: [cells]
    verbs: [get, list, watch]
  - apiGroups: [multigres.com]
    resources: [cells/status]
    verbs: [patch]
  # Children, by server-side apply (patch creates), watched by label; delete prunes the ones no
  # longer desired (only those it controls).
  - apiGroups: [multigres.com]
    resources: [toposervers]
    verbs: [list, watch, patch, delete]
  - apiGroups: [apps]
    resources: [deployments]
    verbs: [list, watch, patch, delete]
  - apiGroups: [""]
    resources: [services]
    verbs: [list, watch, patch, delete]
  # Events on the objects it reconciles (kube's recorder creates them and patches a repeated one).
  - apiGroups: [events.k8s.io]
    resources: [events]
    verbs: [create, patch]
leases:
  # Leader election (--leader-elect): the Lease cell-controller-leader in the release namespace.
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [create]
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [get, update]
    resourceNames: [cell-controller-leader]
{{- end -}}
{{- define "multigres-cell-controller.args" -}}[]{{- end -}}
{{- define "multigres-cell-controller.ports" -}}[]{{- end -}}
