{{/*
The controller's Deployment. Optional keys of the argument dict:
  args:  YAML list of component-specific arguments (before .Values.extraArgs),
  ports: YAML list of extra {name, containerPort} the container serves (also exposed by the Service).
  tlsSecret: a Secret (tls.crt, tls.key, ca.crt: cert-manager's layout) mounted read-only at
         /etc/multigres/tls.
  topologyCaSecret: the operator's topology CA Secret (tls.crt, tls.key; docs/security.md,
         "Topology"), mounted read-only at /etc/multigres/topology-ca and passed as
         --topology-ca-dir. Charts of the controllers that dial etcd or issue etcd certificates pass
         (include "multigres-common.topologyCaSecret" .): set only with global.topologyTls.enabled.
  externalTopologySecret: the operator's client certificate for external etcds that speak TLS
         (ca.crt, tls.crt, tls.key), mounted read-only at /etc/multigres/external-topology-tls and
         passed as --external-topology-tls-dir. Charts of the controllers that dial etcd pass
         (include "multigres-common.externalTopologySecret" .).
*/}}
{{- define "multigres-common.deployment" -}}
{{- $v := .ctx.Values -}}
{{- $watchNs := include "multigres-common.watchNamespace" . -}}
{{- $componentArgs := (fromYaml (printf "list:\n%s" (.args | default "[]"))).list -}}
{{- $extraPorts := (fromYaml (printf "list:\n%s" (.ports | default "[]"))).list -}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "multigres-common.fullname" . }}
  namespace: {{ .ctx.Release.Namespace }}
  labels:
    {{- include "multigres-common.labels" . | nindent 4 }}
spec:
  replicas: {{ $v.replicas }}
  revisionHistoryLimit: 3
  selector:
    matchLabels:
      {{- include "multigres-common.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "multigres-common.labels" . | nindent 8 }}
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with $v.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      serviceAccountName: {{ include "multigres-common.serviceAccountName" . }}
      automountServiceAccountToken: true
      {{- with $v.image.pullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        fsGroup: 65532
        seccompProfile:
          type: RuntimeDefault
      terminationGracePeriodSeconds: 30
      containers:
        - name: {{ .component }}
          image: {{ printf "%s:%s" $v.image.repository ($v.image.tag | default .ctx.Chart.AppVersion) | quote }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          command: [{{ .component | quote }}]
          args:
            - --http-addr=0.0.0.0:{{ $v.ports.http }}
            - --grpc-health-addr=0.0.0.0:{{ $v.ports.grpcHealth }}
            - --log-json=true
            - --lease-namespace={{ .ctx.Release.Namespace }}
            {{- if $watchNs }}
            - --watch-namespace={{ $watchNs }}
            {{- end }}
            {{- if $v.leaderElection.enabled }}
            - --leader-elect
            {{- end }}
            {{- if .topologyCaSecret }}
            - --topology-ca-dir=/etc/multigres/topology-ca
            {{- end }}
            {{- if .externalTopologySecret }}
            - --external-topology-tls-dir=/etc/multigres/external-topology-tls
            {{- end }}
            {{- range $componentArgs }}
            - {{ . | quote }}
            {{- end }}
            {{- range $v.extraArgs }}
            - {{ . | quote }}
            {{- end }}
          env:
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
            - name: POD_NAMESPACE
              valueFrom:
                fieldRef:
                  fieldPath: metadata.namespace
            {{- with (.ctx.Values.global).topologyAllowedHosts }}
            # Read by the controllers that dial a topology (docs/security.md); the others ignore it.
            - name: MULTIGRES_TOPOLOGY_ALLOWED_HOSTS
              value: {{ . | quote }}
            {{- end }}
            {{- with $v.env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          ports:
            - name: http
              containerPort: {{ $v.ports.http }}
              protocol: TCP
            - name: grpc-health
              containerPort: {{ $v.ports.grpcHealth }}
              protocol: TCP
            {{- range $extraPorts }}
            - name: {{ .name }}
              containerPort: {{ .containerPort }}
              protocol: TCP
            {{- end }}
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            initialDelaySeconds: 5
            periodSeconds: 10
            timeoutSeconds: 2
            failureThreshold: 6
          readinessProbe:
            httpGet:
              path: /readyz
              port: http
            periodSeconds: 5
            timeoutSeconds: 2
            failureThreshold: 3
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          {{- if or .tlsSecret .topologyCaSecret .externalTopologySecret }}
          volumeMounts:
            {{- if .tlsSecret }}
            - name: tls
              mountPath: /etc/multigres/tls
              readOnly: true
            {{- end }}
            {{- if .topologyCaSecret }}
            - name: topology-ca
              mountPath: /etc/multigres/topology-ca
              readOnly: true
            {{- end }}
            {{- if .externalTopologySecret }}
            - name: external-topology-tls
              mountPath: /etc/multigres/external-topology-tls
              readOnly: true
            {{- end }}
          {{- end }}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            runAsNonRoot: true
            privileged: false
            capabilities:
              drop: ["ALL"]
            seccompProfile:
              type: RuntimeDefault
      {{- if or .tlsSecret .topologyCaSecret .externalTopologySecret }}
      volumes:
        {{- if .tlsSecret }}
        - name: tls
          secret:
            secretName: {{ .tlsSecret | quote }}
            defaultMode: 0440
        {{- end }}
        {{- if .topologyCaSecret }}
        - name: topology-ca
          secret:
            secretName: {{ .topologyCaSecret | quote }}
            defaultMode: 0440
        {{- end }}
        {{- if .externalTopologySecret }}
        - name: external-topology-tls
          secret:
            secretName: {{ .externalTopologySecret | quote }}
            defaultMode: 0440
        {{- end }}
      {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}
