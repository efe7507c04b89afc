{{- define "multigres-topo-controller.rules" -}}
cluster:
  # Start-up waits until the CRDs it serves are established (a watch on each, by name).
  - apiGroups: [apiextensions.k8s.io]
    resources: [customresourcedefinitions]
    verbs: [get, list, watch]
    resourceNames: [toposervers.multigres.com]
  # Only while a TopoServer asks for another etcd volume size than its StatefulSet was created
  # with: whether the claims' StorageClass allows expansion (read by name).
  - apiGroups: [storage.k8s.io]
    resources: [storageclasses]
    verbs: [get]
namespaced:
  # The object it reconciles, its status (server-side apply), and its finalizers subresource: children
  # carry a controller ownerReference with blockOwnerDeletion, which the OwnerReferencesPermissionEnforcement
  # admission plugin allows only to who may update the owner's finalizers.
  - apiGroups: [multigres.com]
    resources: [toposervers]
    verbs: [get, list, watch]
  - apiGroups: [multigres.com]
    resources: [toposervers/status]
    verbs: [patch]
  - apiGroups: [multigres.com]
    resources: [toposervers/finalizers]
    verbs: [update]
  # Children by server-side apply (a patch that may create needs create too), cached by label.
  # No delete: they go with the TopoServer through garbage collection.
  - apiGroups: [apps]
    resources: [statefulsets]
    verbs: [list, watch, create, patch]
  - apiGroups: [""]
    resources: [services]
    verbs: [list, watch, create, patch]
  - apiGroups: [policy]
    resources: [poddisruptionbudgets]
    verbs: [list, watch, create, patch]
  # The etcd members' claims, only while their size is to change: read by name, and a patch
  # raises the storage request (a StatefulSet's claim template cannot change). Never deleted.
  - apiGroups: [""]
    resources: [persistentvolumeclaims]
    verbs: [get, patch]
  # The etcd members' certificate Secret of a TopoServer that speaks TLS, created once; whether it
  # exists is asked by a dry-run create (409), never by reading it.
  - apiGroups: [""]
    resources: [secrets]
    verbs: [create]
  # Events on the objects it reconciles (kube's recorder creates them, and patches a repeated one).
  - apiGroups: [events.k8s.io]
    resources: [events]
    verbs: [create, patch]
leases:
  # --leader-elect: the Lease topo-controller-leader in the release namespace (created once, then read and renewed).
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [create]
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [get, update]
    resourceNames: [topo-controller-leader]
{{- end -}}
{{- define "multigres-topo-controller.args" -}}[]{{- end -}}
{{- define "multigres-topo-controller.ports" -}}[]{{- end -}}
