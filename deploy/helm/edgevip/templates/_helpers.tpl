{{/* Chart name. */}}
{{- define "edgevip.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name if it contains the chart name (edgevip). */}}
{{- define "edgevip.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The VIP ConfigMap's name. */}}
{{- define "edgevip.configMapName" -}}
{{- printf "%s-vips" (include "edgevip.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "edgevip.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "edgevip.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* nodeSelector as a label selector string: edgenode=true */}}
{{- define "edgevip.nodeSelectorString" -}}
{{- $pairs := list }}
{{- range $k, $v := .Values.nodeSelector }}
{{- $pairs = append $pairs (printf "%s=%s" $k (toString $v)) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}

{{- define "edgevip.selectorLabels" -}}
app.kubernetes.io/name: {{ include "edgevip.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "edgevip.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "edgevip.selectorLabels" . }}
app.kubernetes.io/part-of: edgevip
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The scrape endpoint (after its port) of the PodMonitor and the ServiceMonitor:
edgevip's `instance` label (the VRRP instance) kept, the node's name as `node`, as the
alert rules expect. */}}
{{- define "edgevip.scrapeEndpoint" -}}
path: /metrics
{{- with .Values.monitoring.interval }}
interval: {{ . }}
{{- end }}
honorLabels: true
relabelings:
  - sourceLabels: [__meta_kubernetes_pod_node_name]
    targetLabel: node
{{- end }}
