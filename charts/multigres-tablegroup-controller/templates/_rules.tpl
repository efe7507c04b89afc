{{- define "multigres-tablegroup-controller.rules" -}}
cluster:
  # Start-up waits until the CRDs it serves are established (a watch on each, by name).
  - apiGroups: [apiextensions.k8s.io]
    resources: [customresourcedefinitions]
    verbs: [get, list, watch]
    resourceNames: [tablegroups.multigres.com, shards.multigres.com]
namespaced:
  - apiGroups: [multigres.com]
    resources: [tablegroups]
    verbs: [get, list, watch]
  - apiGroups: [multigres.com]
    resources: [tablegroups/status]
    verbs: [patch]
  # Shards, by server-side apply (patch creates), watched by label; delete prunes the ones no
  # longer desired (only those it controls).
  - apiGroups: [multigres.com]
    resources: [shards]
    verbs: [list, watch, patch, delete]
  # Events on the objects it reconciles (kube's recorder creates them and patches a repeated one).
  - apiGroups: [events.k8s.io]
    resources: [events]
    verbs: [create, patch]
leases:
  # Leader election (--leader-elect): the Lease tablegroup-controller-leader in the release namespace.
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [create]
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [get, update]
    resourceNames: [tablegroup-controller-leader]
{{- end -}}
{{- define "multigres-tablegroup-controller.args" -}}[]{{- end -}}
{{- define "multigres-tablegroup-controller.ports" -}}[]{{- end -}}
