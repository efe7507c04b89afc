{{- define "multigres-cluster-controller.rules" -}}
cluster:
  # Start-up waits until the CRDs it serves are established (a watch on each, by name).
  - apiGroups: [apiextensions.k8s.io]
    resources: [customresourcedefinitions]
    verbs: [get, list, watch]
    resourceNames: [multigresclusters.multigres.com, deploymenttemplates.multigres.com, toposervers.multigres.com, cells.multigres.com, tablegroups.multigres.com, backups.multigres.com, scheduledbackups.multigres.com]
namespaced:
  # The object it reconciles, its status (server-side apply), and its finalizers subresource: children
  # carry a controller ownerReference with blockOwnerDeletion, which the OwnerReferencesPermissionEnforcement
  # admission plugin allows only to who may update the owner's finalizers.
  # patch: the annotation multigres.com/registered-databases (databases it registered in the topology).
  - apiGroups: [multigres.com]
    resources: [multigresclusters]
    verbs: [get, list, watch, patch]
  - apiGroups: [multigres.com]
    resources: [multigresclusters/status]
    verbs: [patch]
  - apiGroups: [multigres.com]
    resources: [multigresclusters/finalizers]
    verbs: [update]
  # Templates: resolve them, re-reconcile consumers on change; patch adds and removes the
  # multigres.com/template-in-use finalizer; status lists the consumers.
  - apiGroups: [multigres.com]
    resources: [deploymenttemplates]
    verbs: [get, list, watch, patch]
  - apiGroups: [multigres.com]
    resources: [deploymenttemplates/status]
    verbs: [patch]
  # Children by server-side apply, cached by label; delete prunes those no longer desired (only
  # those it controls).
  - apiGroups: [multigres.com]
    resources: [toposervers, cells, tablegroups]
    verbs: [list, watch, create, patch, delete]
  # multiadmin.
  - apiGroups: [apps]
    resources: [deployments]
    verbs: [list, watch, create, patch, delete]
  - apiGroups: [""]
    resources: [services]
    verbs: [list, watch, create, patch, delete]
  # The cluster's NetworkPolicies (docs/security.md): cached by label, server-side apply, and
  # delete when spec.networkPolicy.enabled turns them off (only those it controls).
  - apiGroups: [networking.k8s.io]
    resources: [networkpolicies]
    verbs: [list, watch, create, patch, delete]
  # The cluster's cert-manager Certificate, only when spec.tls.certManager asks for one: read by name
  # (the kind may not be served), server-side apply; watched (once the kind is served) so that a
  # renewal rolls the pods that mount it.
  - apiGroups: [cert-manager.io]
    resources: [certificates]
    verbs: [get, list, watch, create, patch]
  # The generated Postgres credentials Secret, and the topology client certificate Secret
  # <cluster>-topology-tls when the cluster's topology speaks TLS: each created once. Whether one
  # exists is asked by a dry-run create (409), so no get: a token of this controller reads no Secret
  # (docs/security.md).
  - apiGroups: [""]
    resources: [secrets]
    verbs: [create]
  # The cluster's PodMonitor and PrometheusRule (docs/monitoring.md), only while the Prometheus
  # operator's CRDs are served: read by name (not cached: the kinds may not exist), server-side
  # apply, delete when turned off.
  - apiGroups: [monitoring.coreos.com]
    resources: [podmonitors, prometheusrules]
    verbs: [get, create, patch, delete]
  # Backups (docs/backup-restore.md): Backups it runs and ScheduledBackups it serves (status by
  # server-side apply); a schedule creates its Backups and deletes those beyond its history limits.
  - apiGroups: [multigres.com]
    resources: [backups]
    verbs: [get, list, watch, create, delete]
  - apiGroups: [multigres.com]
    resources: [scheduledbackups]
    verbs: [get, list, watch]
  - apiGroups: [multigres.com]
    resources: [backups/status, scheduledbackups/status]
    verbs: [patch]
  # A schedule's Backups carry its controller ownerReference (blockOwnerDeletion).
  - apiGroups: [multigres.com]
    resources: [scheduledbackups/finalizers]
    verbs: [update]
  # The Shards a Backup covers (cached by label), and their status field lastBackup (a merge patch
  # of that field only; the shard controller writes the rest).
  - apiGroups: [multigres.com]
    resources: [shards]
    verbs: [list, watch]
  - apiGroups: [multigres.com]
    resources: [shards/status]
    verbs: [patch]
  # Events on the objects it reconciles (kube's recorder creates them, and patches a repeated one).
  - apiGroups: [events.k8s.io]
    resources: [events]
    verbs: [create, patch]
leases:
  # --leader-elect: the Lease cluster-controller-leader in the release namespace (created once, then read and renewed).
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [create]
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [get, update]
    resourceNames: [cluster-controller-leader]
{{- end -}}
{{- define "multigres-cluster-controller.args" -}}
{{- $args := list }}
{{- with ((.Values.global).topologyTls).certificateValidity }}
{{- $args = append $args (printf "--topology-certificate-validity=%s" .) }}
{{- end }}
{{- if .Values.statusAggregator.enabled }}
{{- $tls := .Values.statusAggregator.tls }}
{{- $scheme := ternary "https" "http" (not (empty $tls.secretName)) }}
{{- $args = append $args (printf "--status-aggregator-endpoint=%s" (.Values.statusAggregator.endpoint | default (printf "%s://multigres-status-aggregator.%s.svc:9500" $scheme .Release.Namespace))) }}
{{- if $tls.secretName }}
{{- $args = concat $args (list "--status-aggregator-ca=/etc/multigres/tls/ca.crt" "--status-aggregator-cert=/etc/multigres/tls/tls.crt" "--status-aggregator-key=/etc/multigres/tls/tls.key") }}
{{- with $tls.serverName }}
{{- $args = append $args (printf "--status-aggregator-domain=%s" .) }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $args }}
{{- end -}}
{{- define "multigres-cluster-controller.ports" -}}[]{{- end -}}
