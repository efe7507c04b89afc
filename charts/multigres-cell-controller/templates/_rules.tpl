{{- define "multigres-cell-controller.rules" -}}
cluster:
  # Start-up waits until the CRDs it serves are established (a watch on each, by name).
  - apiGroups: [apiextensions.k8s.io]
    resources: [customresourcedefinitions]
    verbs: [get, list, watch]
    resourceNames: [cells.multigres.com, toposervers.multigres.com]
namespaced:
  # The object it reconciles, its status (server-side apply), and its finalizers subresource: children
  # carry a controller ownerReference with blockOwnerDeletion, which the OwnerReferencesPermissionEnforcement
  # admission plugin allows only to who may update the owner's finalizers.
  # patch: the finalizer multigres.com/cell-registration (deregisters the Cell from the topology).
  - apiGroups: [multigres.com]
    resources: [cells]
    verbs: [get, list, watch, patch]
  - apiGroups: [multigres.com]
    resources: [cells/status]
    verbs: [patch]
  - apiGroups: [multigres.com]
    resources: [cells/finalizers]
    verbs: [update]
  # The local TopoServer by server-side apply; delete when the Cell stops asking for one.
  - apiGroups: [multigres.com]
    resources: [toposervers]
    verbs: [list, watch, create, patch, delete]
  # multigateway and multiorch.
  - apiGroups: [apps]
    resources: [deployments]
    verbs: [list, watch, create, patch]
  # Disruption budgets of multigateway and multiorch (at most one pod of each down in a drain).
  - apiGroups: [policy]
    resources: [poddisruptionbudgets]
    verbs: [list, watch, create, patch]
  # The gateway Service; get: whether the global topology's client Service is going away.
  - apiGroups: [""]
    resources: [services]
    verbs: [get, list, watch, create, patch]
  # Metadata-only pod cache, and a confirming list before pruning stale pooler records.
  - apiGroups: [""]
    resources: [pods]
    verbs: [list, watch]
  # Events on the objects it reconciles (kube's recorder creates them, and patches a repeated one).
  - apiGroups: [events.k8s.io]
    resources: [events]
    verbs: [create, patch]
leases:
  # --leader-elect: the Lease cell-controller-leader in the release namespace (created once, then read and renewed).
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
