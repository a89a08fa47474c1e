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

{{- /* What the operator may do with Pods: "none", "read" (a fleet's podSelector) or
       "read-delete" (fleet.remediation.mode=Restart). Its Role grants it, and its Pod
       template carries it: the operator checks its access once at start-up, so a change
       must roll it. */ -}}
{{- define "amp.operatorPodAccess" -}}
{{- if eq .Values.fleet.remediation.mode "Restart" -}}read-delete
{{- else if or (and .Values.fleet.pods.enabled (or .Values.fleet.pods.matchLabels (include "amp.runsWorkers" .))) (ne .Values.fleet.remediation.mode "Off") -}}read
{{- else -}}none
{{- end -}}
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

{{- /*
TLS to the metadata DB: one projected read-only volume at /etc/amp/db-tls holding
ca.crt (from a Secret or a ConfigMap) and tls.crt / tls.key (a client certificate
Secret), and the libpq variables pointing at them. A URL's own sslmode / sslrootcert /
sslcert / sslkey win over these variables.
*/ -}}
{{- define "amp.dbTls.mountPath" -}}/etc/amp/db-tls{{- end -}}

{{- define "amp.dbTls.hasCa" -}}
{{- with .Values.databaseTLS.ca -}}
{{- if and .secretName .configMapName -}}
{{- fail "databaseTLS.ca: set secretName or configMapName, not both" -}}
{{- end -}}
{{- if or .secretName .configMapName -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{- define "amp.dbTlsEnv" -}}
{{- $dir := include "amp.dbTls.mountPath" . -}}
{{- with .Values.databaseTLS.sslMode }}
- name: PGSSLMODE
  value: {{ . | quote }}
{{- end }}
{{- if include "amp.dbTls.hasCa" . }}
- name: PGSSLROOTCERT
  value: {{ printf "%s/ca.crt" $dir | quote }}
{{- end }}
{{- if .Values.databaseTLS.clientCert.secretName }}
- name: PGSSLCERT
  value: {{ printf "%s/tls.crt" $dir | quote }}
- name: PGSSLKEY
  value: {{ printf "%s/tls.key" $dir | quote }}
{{- end }}
{{- end -}}

{{- define "amp.dbTlsVolumeMounts" -}}
{{- if or (include "amp.dbTls.hasCa" .) .Values.databaseTLS.clientCert.secretName }}
- name: db-tls
  mountPath: {{ include "amp.dbTls.mountPath" . }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "amp.dbTlsVolumes" -}}
{{- $tls := .Values.databaseTLS -}}
{{- if or (include "amp.dbTls.hasCa" .) $tls.clientCert.secretName }}
- name: db-tls
  projected:
    defaultMode: {{ $tls.defaultMode }}
    sources:
      {{- if $tls.ca.secretName }}
      - secret:
          name: {{ $tls.ca.secretName }}
          items: [{key: {{ $tls.ca.key | quote }}, path: ca.crt}]
      {{- else if $tls.ca.configMapName }}
      - configMap:
          name: {{ $tls.ca.configMapName }}
          items: [{key: {{ $tls.ca.key | quote }}, path: ca.crt}]
      {{- end }}
      {{- with $tls.clientCert }}
      {{- if .secretName }}
      - secret:
          name: {{ .secretName }}
          items:
            - {key: {{ .certKey | quote }}, path: tls.crt}
            - {key: {{ .keyKey | quote }}, path: tls.key}
      {{- end }}
      {{- end }}
{{- end }}
{{- end -}}

{{- /*
Database credentials (databaseCredentials.mode). file (default): the URL (and the
password, when databaseCredentials.passwordKey / readerPasswordKey name one) mounted from
the Secret at /etc/amp/db and passed as AMP_DATABASE_URL_FILE / AMP_DATABASE_PASSWORD_FILE;
ampd reads them again for every new connection, so a rotated Secret is used without a
restart, and the Pod spec carries no credential. env: AMP_DATABASE_URL from the Secret.
Call with (dict "root" . "reader" true|false).
*/ -}}
{{- define "amp.dbCredentials.mountPath" -}}/etc/amp/db{{- end -}}

{{- define "amp.dbPasswordKey" -}}
{{- if not (include "amp.bundledDb" .root) -}}
{{- if .reader -}}{{ .root.Values.databaseCredentials.readerPasswordKey }}{{- else -}}{{ .root.Values.databaseCredentials.passwordKey }}{{- end -}}
{{- end -}}
{{- end -}}

{{- define "amp.dbCredentialsEnv" -}}
{{- $dir := include "amp.dbCredentials.mountPath" . -}}
{{- $urlKey := ternary (include "amp.dbReaderUrlKey" .root) (include "amp.dbUrlKey" .root) .reader -}}
{{- if eq .root.Values.databaseCredentials.mode "env" }}
- name: AMP_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "amp.dbSecret" .root }}
      key: {{ $urlKey }}
{{- else }}
- name: AMP_DATABASE_URL_FILE
  value: {{ printf "%s/url" $dir | quote }}
{{- end }}
{{- if include "amp.dbPasswordKey" . }}
- name: AMP_DATABASE_PASSWORD_FILE
  value: {{ printf "%s/password" $dir | quote }}
{{- end }}
{{- end -}}

{{- define "amp.dbCredentialsMounted" -}}
{{- if or (ne .root.Values.databaseCredentials.mode "env") (include "amp.dbPasswordKey" .) -}}true{{- end -}}
{{- end -}}

{{- /* The DB credentials and TLS volume mounts of a container that talks to the DB. */ -}}
{{- define "amp.dbVolumeMounts" -}}
{{- if include "amp.dbCredentialsMounted" . }}
- name: db-credentials
  mountPath: {{ include "amp.dbCredentials.mountPath" . }}
  readOnly: true
{{- end }}
{{- include "amp.dbTlsVolumeMounts" .root }}
{{- end -}}

{{- define "amp.dbVolumes" -}}
{{- if include "amp.dbCredentialsMounted" . }}
- name: db-credentials
  secret:
    secretName: {{ include "amp.dbSecret" .root }}
    defaultMode: {{ .root.Values.databaseCredentials.defaultMode }}
    items:
      {{- if ne .root.Values.databaseCredentials.mode "env" }}
      - key: {{ ternary (include "amp.dbReaderUrlKey" .root) (include "amp.dbUrlKey" .root) .reader | quote }}
        path: url
      {{- end }}
      {{- with (include "amp.dbPasswordKey" .) }}
      - key: {{ . | quote }}
        path: password
      {{- end }}
{{- end }}
{{- include "amp.dbTlsVolumes" .root }}
{{- end -}}
