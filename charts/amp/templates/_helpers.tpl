{{- define "amp.name" -}}amp{{- end -}}

{{- define "amp.fullname" -}}
{{- if contains "amp" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-amp" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "amp.labels" -}}
app.kubernetes.io/name: amp
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "amp.selector" -}}
app.kubernetes.io/name: amp
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "amp.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "amp.workerTag" -}}
{{ .Values.worker.image.tag | default .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- /* Secret holding the database URLs: the bundled DB's or the user's. */ -}}
{{- define "amp.dbSecret" -}}
{{- if .Values.postgresql.enabled -}}
{{ .Values.postgresql.auth.existingSecret | default (printf "%s-db" (include "amp.fullname" .)) }}
{{- else -}}
{{- required "externalDatabase.existingSecret is required when postgresql.enabled is false" .Values.externalDatabase.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "amp.dbUrlKey" -}}
{{- if .Values.postgresql.enabled -}}url{{- else -}}{{ .Values.externalDatabase.urlKey }}{{- end -}}
{{- end -}}

{{- define "amp.dbReaderUrlKey" -}}
{{- if .Values.postgresql.enabled -}}reader-url{{- else -}}{{ .Values.externalDatabase.readerUrlKey | default .Values.externalDatabase.urlKey }}{{- end -}}
{{- end -}}

{{- define "amp.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "amp.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{- define "amp.commonEnv" -}}
- name: AMP_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
{{- end -}}
