{{- define "amp.name" -}}
{{- .Values.nameOverride | default "amp" | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- /* 40 characters leave room for "-admin-api", "-worker-NNN" and the like. */ -}}
{{- define "amp.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "amp.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- /* A component's ServiceAccount: <serviceAccount.name or fullname>-<component>. */ -}}
{{- define "amp.serviceAccountName" -}}
{{- printf "%s-%s" (.root.Values.serviceAccount.name | default (include "amp.fullname" .root)) .component -}}
{{- end -}}

{{- /* Pod-level settings every workload shares. */ -}}
{{- define "amp.podCommon" -}}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- include "amp.podSecurityContext" . | nindent 2 }}
{{- end -}}

{{- define "amp.labels" -}}
app.kubernetes.io/name: {{ include "amp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "amp.selector" -}}
app.kubernetes.io/name: {{ include "amp.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "amp.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "amp.workerTag" -}}
{{ .Values.worker.image.tag | default .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- /* existingAmp.enabled: attach to the metadata DB Amp's own services manage. Nothing
       of ours writes there: no bundled DB, no migration Job, no worker StatefulSet. */ -}}
{{- define "amp.bundledDb" -}}
{{- if and .Values.postgresql.enabled (not .Values.existingAmp.enabled) -}}true{{- end -}}
{{- end -}}

{{- define "amp.runsWorkers" -}}
{{- if and .Values.worker.enabled (not .Values.existingAmp.enabled) -}}true{{- end -}}
{{- end -}}

{{- define "amp.runsMigrations" -}}
{{- if and .Values.migrations.enabled (not .Values.existingAmp.enabled) -}}true{{- end -}}
{{- end -}}

{{- /* The fleet's version: the worker image tag for our workers; for Amp's, only the
       user knows it. */ -}}
{{- define "amp.fleetVersion" -}}
{{- if .Values.existingAmp.enabled -}}
{{- required "existingAmp.enabled: set fleet.version to the version your Amp workers report (the `version` of `ampctl worker versions`, or SELECT DISTINCT info->>'version' FROM workers), or fleet.enabled=false" .Values.fleet.version -}}
{{- else -}}
{{- .Values.fleet.version | default (include "amp.workerTag" .) -}}
{{- end -}}
{{- end -}}

{{- /* Secret holding the database URLs: the bundled DB's or the user's. */ -}}
{{- define "amp.dbSecret" -}}
{{- if include "amp.bundledDb" . -}}
{{ .Values.postgresql.auth.existingSecret | default (printf "%s-db" (include "amp.fullname" .)) }}
{{- else -}}
{{- required "externalDatabase.existingSecret is required when postgresql.enabled is false or existingAmp.enabled is true" .Values.externalDatabase.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "amp.dbUrlKey" -}}
{{- if include "amp.bundledDb" . -}}url{{- else -}}{{ .Values.externalDatabase.urlKey }}{{- end -}}
{{- end -}}

{{- define "amp.dbReaderUrlKey" -}}
{{- if include "amp.bundledDb" . -}}reader-url{{- else -}}{{ .Values.externalDatabase.readerUrlKey | default .Values.externalDatabase.urlKey }}{{- end -}}
{{- end -}}

{{- define "amp.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext -}}
{{- end -}}

{{- define "amp.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext -}}
{{- end -}}

{{- define "amp.commonEnv" -}}
- name: AMP_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
{{- end -}}
