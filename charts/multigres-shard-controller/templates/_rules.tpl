{{- define "multigres-shard-controller.rules" -}}
cluster:
  # Start-up waits until the CRDs it serves are established (a watch on each, by name).
  - apiGroups: [apiextensions.k8s.io]
    resources: [customresourcedefinitions]
    verbs: [get, list, watch]
    resourceNames: [shards.multigres.com]
namespaced:
  - apiGroups: [multigres.com]
    resources: [shards]
    verbs: [get, list, watch]
  - apiGroups: [multigres.com]
    resources: [shards/status]
    verbs: [patch]
  # Pool pods, their claims, headless Services and PDBs, by server-side apply (patch creates),
  # watched by label; delete removes pods of a pool scaled down (never claims: see data safety).
  - apiGroups: [""]
    resources: [pods]
    verbs: [list, watch, patch, delete]
  - apiGroups: [""]
    resources: [persistentvolumeclaims]
    verbs: [list, watch, patch]
  - apiGroups: [""]
    resources: [services]
    verbs: [list, watch, patch, delete]
  - apiGroups: [policy]
    resources: [poddisruptionbudgets]
    verbs: [list, watch, patch, delete]
  # Events on the objects it reconciles (kube's recorder creates them and patches a repeated one).
  - apiGroups: [events.k8s.io]
    resources: [events]
    verbs: [create, patch]
leases:
  # Partitioning: each replica renews its own membership Lease (server-side apply), lists the
  # others' to compute who owns which buckets, and deletes a Lease left behind by a dead replica.
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [list, patch, delete]
{{- end -}}
{{- define "multigres-shard-controller.args" -}}[]{{- end -}}
{{- define "multigres-shard-controller.ports" -}}[]{{- end -}}
