{{/* The Service: http (/metrics, /healthz, /readyz), grpc-health (polled by the status aggregator), plus the component's extra ports (see the deployment's `ports`). */}}
{{- define "multigres-common.service" -}}
{{- $v := .ctx.Values -}}
{{- $extraPorts := (fromYaml (printf "list:\n%s" (.ports | default "[]"))).list -}}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ include "multigres-common.fullname" . }}
  namespace: {{ .ctx.Release.Namespace }}
  labels:
    {{- include "multigres-common.labels" . | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "multigres-common.selectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: {{ $v.ports.http }}
      targetPort: http
      protocol: TCP
    - name: grpc-health
      port: {{ $v.ports.grpcHealth }}
      targetPort: grpc-health
      protocol: TCP
    {{- range $extraPorts }}
    - name: {{ .name }}
      port: {{ .containerPort }}
      targetPort: {{ .name }}
      protocol: TCP
    {{- end }}
{{- end -}}

{{- define "multigres-common.serviceMonitor" -}}
{{- $sm := .ctx.Values.serviceMonitor -}}
{{- if $sm.enabled }}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "multigres-common.fullname" . }}
  namespace: {{ .ctx.Release.Namespace }}
  labels:
    {{- include "multigres-common.labels" . | nindent 4 }}
    {{- with $sm.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "multigres-common.selectorLabels" . | nindent 6 }}
  namespaceSelector:
    matchNames: [{{ .ctx.Release.Namespace | quote }}]
  endpoints:
    - port: http
      path: /metrics
      interval: {{ $sm.interval | default "30s" }}
      {{- with $sm.scrapeTimeout }}
      scrapeTimeout: {{ . }}
      {{- end }}
{{- end }}
{{- end -}}
