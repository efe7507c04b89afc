{{- define "multigres-topo-controller.rules" -}}
cluster:
  # Start-up waits until the CRDs it serves are established (a watch on each, by name).
  - apiGroups: [apiextensions.k8s.io]
    resources: [customresourcedefinitions]
    verbs: [get, list, watch]
    resourceNames: [toposervers.multigres.com]
namespaced:
  - apiGroups: [multigres.com]
    resources: [toposervers]
    verbs: [get, list, watch]
  - apiGroups: [multigres.com]
    resources: [toposervers/status]
    verbs: [patch]
  # Children, by server-side apply (patch creates), watched by label to compare before writing.
  - apiGroups: [apps]
    resources: [statefulsets]
    verbs: [list, watch, patch]
  - apiGroups: [""]
    resources: [services]
    verbs: [list, watch, patch]
  - apiGroups: [policy]
    resources: [poddisruptionbudgets]
    verbs: [list, watch, patch]
  # Events on the objects it reconciles (kube's recorder creates them and patches a repeated one).
  - apiGroups: [events.k8s.io]
    resources: [events]
    verbs: [create, patch]
leases:
  # Leader election (--leader-elect): the Lease topo-controller-leader in the release namespace.
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
