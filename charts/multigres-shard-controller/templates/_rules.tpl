{{- define "multigres-shard-controller.rules" -}}
cluster:
  # Start-up waits until the CRDs it serves are established (a watch on each, by name).
  - apiGroups: [apiextensions.k8s.io]
    resources: [customresourcedefinitions]
    verbs: [get, list, watch]
    resourceNames: [shards.multigres.com]
  # Only when a pool asks for more storage than its claims request: whether the claims'
  # StorageClass allows expansion (read by name, never listed).
  - apiGroups: [storage.k8s.io]
    resources: [storageclasses]
    verbs: [get]
namespaced:
  # The object it reconciles, its status (server-side apply), and its finalizers subresource: children
  # carry a controller ownerReference with blockOwnerDeletion, which the OwnerReferencesPermissionEnforcement
  # admission plugin allows only to who may update the owner's finalizers.
  - apiGroups: [multigres.com]
    resources: [shards]
    verbs: [get, list, watch]
  - apiGroups: [multigres.com]
    resources: [shards/status]
    verbs: [patch]
  - apiGroups: [multigres.com]
    resources: [shards/finalizers]
    verbs: [update]
  # Pool pods by server-side apply; an outdated pod is replaced, and a scaled-down one removed,
  # through the Eviction API so that the pool's PodDisruptionBudget holds.
  - apiGroups: [""]
    resources: [pods]
    verbs: [list, watch, create, patch]
  - apiGroups: [""]
    resources: [pods/eviction]
    verbs: [create]
  # Data claims and the shard's backup repository claim; patch also grows a claim's storage request;
  # delete only on scale-down when the Shard's pvcDeletionPolicy says Delete.
  - apiGroups: [""]
    resources: [persistentvolumeclaims]
    verbs: [list, watch, create, patch, delete]
  # The shard's pgBackRest TLS Secret: created once. Whether it exists is asked by a dry-run
  # create (409), so no get: a token of this controller reads no Secret (docs/security.md).
  - apiGroups: [""]
    resources: [secrets]
    verbs: [create]
  # The shard's pg_hba template and each pool's postgresql.conf ConfigMap (named after their
  # content): get (metadata only) whether one exists, create it once; list (metadata only, by the
  # Shard's label) and delete the pools' old ones once no pod mounts them.
  - apiGroups: [""]
    resources: [configmaps]
    verbs: [get, list, create, delete]
  # Headless Service and PDB per pool; delete prunes those of pools that are gone.
  - apiGroups: [""]
    resources: [services]
    verbs: [list, watch, create, patch, delete]
  - apiGroups: [policy]
    resources: [poddisruptionbudgets]
    verbs: [list, watch, create, patch, delete]
  # Events on the objects it reconciles (kube's recorder creates them, and patches a repeated one).
  - apiGroups: [events.k8s.io]
    resources: [events]
    verbs: [create, patch]
leases:
  # --partition: each replica renews its own membership Lease by server-side apply, lists the others'
  # to compute which buckets it owns, and deletes its own on shutdown or one left by a dead replica.
  # Roll slots (at most N Shards of a table group roll at once): read, taken by create or by an
  # update carrying the resourceVersion read, given back by delete.
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [get, list, create, update, patch, delete]
{{- end -}}
{{- define "multigres-shard-controller.args" -}}
- --hold-unserved-shards={{ .Values.holdUnservedShards }}
- --max-rolling-shards-per-table-group={{ .Values.maxRollingShardsPerTableGroup }}
- --switchover-timeout={{ .Values.switchoverTimeout }}
{{- if .Values.partition.enabled }}
- --partition
{{- end }}
{{- with ((.Values.global).topologyTls).certificateValidity }}
- --topology-certificate-validity={{ . }}
{{- end }}
{{- end -}}
{{- define "multigres-shard-controller.ports" -}}[]{{- end -}}
