{{/* Names and labels. */}}
{{- define "alora.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "alora.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "alora.labels" -}}
{{ include "alora.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "alora.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The Ray resource a worker group offers, which deployments placed on it ask for. */}}
{{- define "alora.groupResource" -}}
alora_group_{{ . | replace "-" "_" }}
{{- end -}}

{{/* Storage: where a URI's files are inside every pod ("" for embedded or empty). */}}
{{- define "alora.uriPath" -}}
{{- $uri := . -}}
{{- if hasPrefix "pvc://" $uri -}}
{{- $rest := trimPrefix "pvc://" $uri -}}
{{- $claim := first (splitList "/" $rest) -}}
/mnt/pvc/{{ $claim }}/{{ trimPrefix (printf "%s/" $claim) $rest | trimPrefix $claim }}
{{- else if hasPrefix "hf://" $uri -}}
/mnt/cache/hf-models/{{ first (splitList "@" (trimPrefix "hf://" $uri)) }}
{{- else if hasPrefix "/" $uri -}}
{{ $uri }}
{{- end -}}
{{- end -}}

{{- define "alora.pvcClaims" -}}
{{- $claims := list -}}
{{- range (list .Values.model.uri .Values.adapters.uri) -}}
{{- if hasPrefix "pvc://" . -}}
{{- $claims = append $claims (first (splitList "/" (trimPrefix "pvc://" .))) -}}
{{- end -}}
{{- end -}}
{{- toJson (uniq $claims) -}}
{{- end -}}

{{/* The init step: download hf:// URIs, prepare the embedded model (and stand-ins). */}}
{{- define "alora.storageScript" -}}
set -eu
{{- range (list .Values.model.uri .Values.adapters.uri) }}
{{- if hasPrefix "hf://" . }}
{{- $parts := splitList "@" (trimPrefix "hf://" .) }}
hf download {{ first $parts | quote }}{{ if gt (len $parts) 1 }} --revision {{ last $parts | quote }}{{ end }} --local-dir {{ include "alora.uriPath" . | quote }}
{{- end }}
{{- end }}
{{- if eq .Values.model.uri "embedded" }}
alora-serve prepare-model{{ if not .Values.adapters.uri }} --stand-ins{{ end }}
{{- end }}
{{- end -}}

{{- define "alora.env" -}}
- name: ALORA_SERVE_CACHE
  value: /mnt/cache/alora-serve
- name: HF_HOME
  value: /mnt/cache/hf
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "alora.volumeMounts" -}}
- name: cache
  mountPath: /mnt/cache
{{- range (include "alora.pvcClaims" . | fromJsonArray) }}
- name: pvc-{{ . }}
  mountPath: /mnt/pvc/{{ . }}
  readOnly: true
{{- end }}
{{- if .Values.gateway.tokensSecret }}
- name: tokens
  mountPath: /etc/alora/tokens
  readOnly: true
{{- end }}
{{- end -}}

{{- define "alora.volumes" -}}
- name: cache
{{- if .Values.storage.cache.claimName }}
  persistentVolumeClaim:
    claimName: {{ .Values.storage.cache.claimName }}
{{- else }}
  emptyDir:
    sizeLimit: {{ .Values.storage.cache.sizeLimit }}
{{- end }}
{{- range (include "alora.pvcClaims" . | fromJsonArray) }}
- name: pvc-{{ . }}
  persistentVolumeClaim:
    claimName: {{ . }}
    readOnly: true
{{- end }}
{{- if .Values.gateway.tokensSecret }}
- name: tokens
  secret:
    secretName: {{ .Values.gateway.tokensSecret }}
{{- end }}
{{- end -}}

{{- define "alora.initContainers" -}}
- name: storage
  image: {{ include "alora.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command: [bash, -c]
  args:
    - |
      {{- include "alora.storageScript" . | nindent 6 }}
  env:
    {{- include "alora.env" . | nindent 4 }}
    {{- if .Values.storage.hfTokenSecret }}
    - name: HF_TOKEN
      valueFrom:
        secretKeyRef: {name: {{ .Values.storage.hfTokenSecret }}, key: HF_TOKEN}
    {{- end }}
  volumeMounts:
    {{- include "alora.volumeMounts" . | nindent 4 }}
{{- end -}}

{{/* Serve options of one deployment, placed on its worker group. */}}
{{- define "alora.scaling" -}}
{{- $scaling := deepCopy (.scaling | default dict) -}}
{{- $resources := merge (dict (include "alora.groupResource" .workerGroup) 1) ($scaling.resources | default dict) -}}
{{- $_ := set $scaling "resources" $resources -}}
{{- toJson $scaling -}}
{{- end -}}

{{/* The TopologyConfig that serveConfigV2 passes to the application builder. */}}
{{- define "alora.topology" -}}
{{- $s := .Values.serve -}}
{{- $g := .Values.gateway -}}
{{- $t := dict "topology" $s.topology "intrinsics" $s.intrinsics "call_timeout_s" $s.call_timeout_s "observability" ($s.observability | default dict) -}}
{{- with (include "alora.uriPath" .Values.model.uri) }}{{ $_ := set $t "model" . }}{{ end -}}
{{- with (include "alora.uriPath" .Values.adapters.uri) }}{{ $_ := set $t "library" . }}{{ end -}}
{{- if eq $s.topology "colocated" -}}
{{- $_ := set $t "colocated" ($s.colocated.engine | default dict) -}}
{{- $_ := set $t "colocated_scaling" (include "alora.scaling" $s.colocated | fromJson) -}}
{{- else -}}
{{- $p := $s.prefill -}}
{{- $_ := set $t "prefill" (dict "engine" ($p.engine | default dict) "scaling" (include "alora.scaling" $p | fromJson) "lease_ttl_s" $p.lease_ttl_s "max_leases" $p.max_leases) -}}
{{- $groups := list -}}
{{- range $s.decode -}}
{{- $group := omit . "workerGroup" "scaling" -}}
{{- $_ := set $group "scaling" (include "alora.scaling" . | fromJson) -}}
{{- $groups = append $groups $group -}}
{{- end -}}
{{- $_ := set $t "decode" $groups -}}
{{- end -}}
{{- $gateway := dict "host" "0.0.0.0" "port" $g.port "health_port" $g.healthPort "max_in_flight" $g.max_in_flight "max_message_bytes" $g.max_message_bytes "resources" (dict "alora_gateway" 1) -}}
{{- if $g.tls.secretName -}}
{{- $tls := dict "cert_file" "/etc/alora/tls/tls.crt" "key_file" "/etc/alora/tls/tls.key" -}}
{{- if $g.tls.mutual }}{{ $_ := set $tls "client_ca_file" "/etc/alora/tls/ca.crt" }}{{ end -}}
{{- $_ := set $gateway "tls" $tls -}}
{{- end -}}
{{- if $g.tokensSecret }}{{ $_ := set $gateway "tokens_file" "/etc/alora/tokens/tokens.yaml" }}{{ end -}}
{{- $_ := set $t "gateway" $gateway -}}
{{- toYaml $t -}}
{{- end -}}

{{- define "alora.placement" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Checks across fields that values.schema.json cannot express. */}}
{{- define "alora.validate" -}}
{{- $groups := list -}}
{{- range .Values.workerGroups -}}
{{- if gt (int .minReplicas) (int .maxReplicas) -}}
{{- fail (printf "workerGroups %s: minReplicas (%d) is above maxReplicas (%d)" .name (int .minReplicas) (int .maxReplicas)) -}}
{{- end -}}
{{- if or (lt (int .replicas) (int .minReplicas)) (gt (int .replicas) (int .maxReplicas)) -}}
{{- fail (printf "workerGroups %s: replicas (%d) must be within minReplicas..maxReplicas (%d..%d)" .name (int .replicas) (int .minReplicas) (int .maxReplicas)) -}}
{{- end -}}
{{- $groups = append $groups .name -}}
{{- end -}}
{{- $s := .Values.serve -}}
{{- $deployments := ternary (list (dict "name" "colocated" "d" $s.colocated)) (list (dict "name" "prefill" "d" $s.prefill)) (eq $s.topology "colocated") -}}
{{- if ne $s.topology "colocated" }}{{ range $s.decode }}{{ $deployments = append $deployments (dict "name" (printf "decode %s" .name) "d" .) }}{{ end }}{{ end -}}
{{- range $deployments -}}
{{- if not (has .d.workerGroup $groups) -}}
{{- fail (printf "serve %s: workerGroup %q is not one of workerGroups %v" .name .d.workerGroup $groups) -}}
{{- end -}}
{{- $auto := (.d.scaling | default dict).autoscaling -}}
{{- if and $auto (hasKey $auto "min_replicas") (hasKey $auto "max_replicas") (gt (int $auto.min_replicas) (int $auto.max_replicas)) -}}
{{- fail (printf "serve %s: autoscaling min_replicas (%d) is above max_replicas (%d)" .name (int $auto.min_replicas) (int $auto.max_replicas)) -}}
{{- end -}}
{{- end -}}
{{- if and (not .Values.adapters.uri) (ne .Values.model.uri "embedded") -}}
{{- fail "adapters.uri is empty (the embedded library: adapters trained for the embedded model, seeded stand-ins for the rest), which only the embedded model has: set adapters.uri to your adapter library, or model.uri to embedded" -}}
{{- end -}}
{{- end -}}
