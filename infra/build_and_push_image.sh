#!/usr/bin/env bash
# Build the agent container image and push it to ECR in the current account and Region.
# Prints the image URI to pass as the AgentImageUri parameter.
#
#   infra/build_and_push_image.sh [--repository NAME] [--tag TAG] [--platform linux/amd64|linux/arm64]
#                                 [--region REGION] [--compression zstd|gzip] [--soci]
#
# Defaults: repository "livekit-agent" (created if missing: scan on push, immutable tags,
# keeps the last 30 images), tag = the git commit (plus a timestamp when the tree has changes),
# platform linux/amd64 (AgentCpuArchitecture X86_64; linux/arm64 goes with ARM64).
# Layers are pushed zstd-compressed (Fargate unpacks them faster than gzip); --soci pushes gzip
# layers instead and adds a SOCI index (tag suffix -soci) so Fargate lazy-loads the image: SOCI
# cannot index zstd layers. It prints the image's installed size and its largest layers.
# Needs: aws CLI v2 with credentials, docker with buildx, git; --soci also nerdctl and soci on a
# host running containerd (NERDCTL="sudo nerdctl" if it needs root). DOCKERFILE and CONTEXT
# override where the image is built from (default agent_container/Dockerfile with the repository
# root as context, because the worker imports control_plane from functions/). docs/cold-start.md
# says what each choice buys.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
repository="livekit-agent"
tag=""
platform="linux/amd64"
region="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
dockerfile="${DOCKERFILE:-$root/agent_container/Dockerfile}"
context="${CONTEXT:-$root}"

compression="zstd"
soci=false
builder="${BUILDX_BUILDER:-livekit-agent-builder}"
nerdctl="${NERDCTL:-nerdctl}"

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --repository) repository="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    --platform) platform="$2"; shift 2 ;;
    --region) region="$2"; shift 2 ;;
    --compression) compression="$2"; shift 2 ;;
    --soci) soci=true; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

step() { printf '==> %s\n' "$*" >&2; }

for tool in aws docker git; do
  command -v "$tool" >/dev/null || { echo "error: $tool is not installed" >&2; exit 1; }
done
docker buildx version >/dev/null 2>&1 || { echo "error: docker buildx is not installed" >&2; exit 1; }
case "$compression" in
  zstd|gzip) ;;
  *) echo "error: --compression must be zstd or gzip" >&2; exit 2 ;;
esac
if [[ "$soci" == true ]]; then
  [[ "$compression" == gzip ]] || step "--soci: pushing gzip layers (SOCI cannot index zstd ones)"
  compression="gzip"
  command -v "${nerdctl##* }" >/dev/null && command -v soci >/dev/null \
    || { echo "error: --soci needs nerdctl and soci, with containerd running" >&2; exit 1; }
fi
[[ -f "$dockerfile" ]] || { echo "error: no Dockerfile at $dockerfile (set DOCKERFILE)" >&2; exit 1; }
case "$platform" in
  linux/amd64) architecture="X86_64" ;;
  linux/arm64) architecture="ARM64" ;;
  *) echo "error: --platform must be linux/amd64 or linux/arm64" >&2; exit 2 ;;
esac

if [[ -z "$region" ]]; then
  region="$(aws configure get region || true)"
fi
[[ -n "$region" ]] || { echo "error: no Region: pass --region or set AWS_REGION" >&2; exit 1; }

if [[ -z "$tag" ]]; then
  tag="$(git -C "$root" rev-parse --short=12 HEAD)"
  if [[ -n "$(git -C "$root" status --porcelain -- agent_container functions)" ]]; then
    tag="$tag-dirty-$(date -u +%Y%m%d%H%M%S)"
  fi
fi

account="$(aws sts get-caller-identity --query Account --output text)"
registry="$account.dkr.ecr.$region.amazonaws.com"
uri="$registry/$repository:$tag"

if ! aws ecr describe-repositories --region "$region" --repository-names "$repository" >/dev/null 2>&1; then
  step "creating ECR repository $repository in $region"
  aws ecr create-repository --region "$region" --repository-name "$repository" \
    --image-scanning-configuration scanOnPush=true \
    --image-tag-mutability IMMUTABLE \
    --encryption-configuration encryptionType=AES256 >/dev/null
  aws ecr put-lifecycle-policy --region "$region" --repository-name "$repository" --lifecycle-policy-text \
    '{"rules":[{"rulePriority":1,"description":"keep the last 30 images","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":30},"action":{"type":"expire"}}]}' \
    >/dev/null
fi

# What a task start pays for: the installed (unpacked) size, and which layers make it up.
report_installed_size() {
  local bytes
  bytes="$(docker image inspect --format '{{.Size}}' "$1")"
  step "installed size of $1: $((bytes / 1000 / 1000)) MB; layers, newest first:"
  docker history --format '{{.Size}}\t{{.CreatedBy}}' "$1" | cut -c1-140 >&2
}

report_pushed_size() {
  local bytes
  bytes="$(aws ecr describe-images --region "$region" --repository-name "$repository" \
    --image-ids "imageTag=$1" --query 'imageDetails[0].imageSizeInBytes' --output text)"
  step "pushed ($compression layers) $repository:$1: $((bytes / 1000 / 1000)) MB to download per task start"
}

if aws ecr describe-images --region "$region" --repository-name "$repository" --image-ids "imageTag=$tag" >/dev/null 2>&1; then
  step "$uri is already in ECR (tags are immutable); not rebuilding"
else
  step "logging in to $registry"
  aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "$registry" >/dev/null
  # A docker-container builder: the image exporter's compression options need one (the default
  # docker driver pushes what its image store holds, gzip).
  docker buildx inspect "$builder" >/dev/null 2>&1 \
    || docker buildx create --name "$builder" --driver docker-container >/dev/null
  build=(docker buildx build --builder "$builder" --platform "$platform" -f "$dockerfile" --provenance=false)
  step "building $uri for $platform"
  "${build[@]}" --load -t "$uri" "$context"
  report_installed_size "$uri"
  step "pushing $uri with $compression layers"
  # The same build again (all cached), exported straight to ECR with every layer recompressed,
  # the base image's included, in OCI media types (which zstd layers require).
  "${build[@]}" --output \
    "type=image,name=$uri,push=true,compression=$compression,force-compression=true,oci-mediatypes=true" \
    "$context"
  report_pushed_size "$tag"
fi

if [[ "$soci" == true ]]; then
  soci_uri="$uri-soci"
  if aws ecr describe-images --region "$region" --repository-name "$repository" --image-ids "imageTag=$tag-soci" >/dev/null 2>&1; then
    step "$soci_uri is already in ECR; not indexing again"
  else
    # SOCI index manifest v2: the index travels in one image index with the image, under a new
    # tag; Fargate lazy-loads layers of 10 MB and more (the venv) instead of pulling them first.
    step "adding a SOCI index: $soci_uri"
    aws ecr get-login-password --region "$region" | $nerdctl login --username AWS --password-stdin "$registry" >/dev/null
    $nerdctl pull --quiet --platform "$platform" "$uri" >/dev/null
    $nerdctl image convert --soci --platform "$platform" "$uri" "$soci_uri" >/dev/null
    $nerdctl push --quiet --platform "$platform" "$soci_uri" >/dev/null
  fi
  uri="$soci_uri"
fi

step "deploy with: AgentImageUri=$uri AgentCpuArchitecture=$architecture"
echo "$uri"
