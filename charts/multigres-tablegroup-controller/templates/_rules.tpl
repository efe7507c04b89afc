{{- define "multigres-tablegroup-controller.rules" -}}
cluster:
  # Start-up waits until the CRDs it serves are established (a watch on each, by name).
  - apiGroups: [apiextensions.k8s.io]
    resources: [customresourcedefinitions]
    verbs: [get, list, watch]
    resourceNames: [tablegroups.multigres.com, shards.multigres.com]
namespaced:
  # The object it reconciles, its status (server-side apply), and its finalizers subresource: children
  # carry a controller ownerReference with blockOwnerDeletion, which the OwnerReferencesPermissionEnforcement
  # admission plugin allows only to who may update the owner's finalizers.
  - apiGroups: [multigres.com]
    resources: [tablegroups]
    verbs: [get, list, watch]
  - apiGroups: [multigres.com]
    resources: [tablegroups/status]
    verbs: [patch]
  - apiGroups: [multigres.com]
    resources: [tablegroups/finalizers]
    verbs: [update]
  # Shards by server-side apply, cached by label. No delete: a Shard no longer in the spec is
  # kept and reported (removing a shard is a Multigres workflow).
  - apiGroups: [multigres.com]
    resources: [shards]
    verbs: [list, watch, create, patch]
  # Events on the objects it reconciles (kube's recorder creates them, and patches a repeated one).
  - apiGroups: [events.k8s.io]
    resources: [events]
    verbs: [create, patch]
leases:
  # --leader-elect: the Lease tablegroup-controller-leader in the release namespace (created once, then read and renewed).
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
