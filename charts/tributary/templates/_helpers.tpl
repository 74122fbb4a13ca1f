{{/* The release's full name: the release name, with "-tributary" unless it already says tributary. */}}
{{- define "tributary.fullname" -}}
{{- if contains "tributary" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-tributary" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tributary.selectorLabels" -}}
app.kubernetes.io/name: tributary
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tributary.labels" -}}
{{ include "tributary.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "tributary.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tributary.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "tributary.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The restricted Pod Security Standard, for every container of the chart. */}}
{{- define "tributary.containerSecurityContext" -}}
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
readOnlyRootFilesystem: true
runAsNonRoot: true
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "tributary.webhookService" -}}
{{- printf "%s-webhook" (include "tributary.fullname" .) -}}
{{- end -}}

{{/* Name of the chart's cluster-scoped objects: the full name and the release namespace. */}}
{{- define "tributary.clusterName" -}}
{{- printf "%s-%s" (include "tributary.fullname" .) .Release.Namespace | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The webhook's pods: a name of their own, so the controller Deployment's selector never matches them. */}}
{{- define "tributary.webhookSelectorLabels" -}}
app.kubernetes.io/name: tributary-webhook
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}


{{/* The controller's Azure settings, variable: value (empty ones are left out where used). */}}
{{- define "tributary.azureEnv" -}}
AZURE_TENANT_ID: {{ .Values.azure.tenantId | quote }}
AZURE_CLIENT_ID: {{ .Values.azure.clientId | quote }}
AZURE_SUBSCRIPTION_ID: {{ .Values.azure.subscriptionId | quote }}
TRIBUTARY_AZURE_RESOURCE_GROUP: {{ .Values.azure.resourceGroup | quote }}
TRIBUTARY_AZURE_CREDENTIAL: {{ .Values.azure.credential | quote }}
AZURE_STORAGE_QUEUE_ENDPOINT: {{ .Values.azure.storageQueueEndpoint | quote }}
AZURE_RESOURCE_MANAGER_ENDPOINT: {{ .Values.azure.resourceManagerEndpoint | quote }}
TRIBUTARY_EVENTHUBS_KAFKA_ENDPOINT: {{ .Values.azure.eventHubs.kafkaEndpoint | quote }}
TRIBUTARY_KAFKA_CA_FILE: {{ .Values.azure.eventHubs.kafkaCaFile | quote }}
{{- end -}}

{{/* Where the webhook's pods run: its own nodeSelector, tolerations and affinity, else the controller's. */}}
{{- define "tributary.webhookPlacement" -}}
{{- with (default .Values.nodeSelector .Values.webhook.nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default .Values.tolerations .Values.webhook.tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default .Values.affinity .Values.webhook.affinity) }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
