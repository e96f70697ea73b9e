#!/usr/bin/env bash
# Generate the PKI and kubeconfigs of the local control plane under $CLUSTER_DIR:
#   pki/ca.{crt,key}               cluster CA (client CA, serving CA, CSR signer, root CA in pods)
#   pki/front-proxy-ca.{crt,key}   CA of the aggregation layer's requestheader authentication
#   pki/apiserver.{crt,key}        serving cert of kube-apiserver (127.0.0.1, localhost, kubernetes.default...)
#   pki/<user>.{crt,key}           client certs: admin, controller-manager, scheduler, kwok,
#                                  apiserver-kubelet-client, front-proxy-client
#   pki/sa.{key,pub}               service-account token signing key pair
#   kubeconfig                     admin (system:masters), also what `make cluster` prints
#   <component>.kubeconfig         one per component, with its own identity
# Existing files are kept, so this is cheap to call again.
set -euo pipefail

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PKI=$CLUSTER_DIR/pki
mkdir -p "$PKI"
chmod 700 "$CLUSTER_DIR" "$PKI"
DAYS=3650
first_service_ip() { # 10.213.0.0/16 -> 10.213.0.1
	local net=${SERVICE_CIDR%/*}
	echo "${net%.*}.$((${net##*.} + 1))"
}

new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# new_ca NAME COMMON_NAME
new_ca() {
	[[ -s $PKI/$1.crt ]] && return
	new_key "$PKI/$1.key"
	openssl req -x509 -new -key "$PKI/$1.key" -days "$DAYS" -subj "/CN=$2" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
		-out "$PKI/$1.crt" 2>/dev/null
}
new_ca ca rwscaler-local-ca
# the aggregation layer's own CA, as in a kubeadm cluster (--requestheader-client-ca-file)
new_ca front-proxy-ca rwscaler-local-front-proxy-ca

# issue NAME SUBJECT EXTENDED_KEY_USAGE [SUBJECT_ALT_NAMES] [CA]
issue() {
	local name=$1 subj=$2 eku=$3 san=${4:-} ca=${5:-ca} ext
	[[ -s $PKI/$name.crt ]] && return
	new_key "$PKI/$name.key"
	ext=$(mktemp)
	{
		echo "basicConstraints=critical,CA:FALSE"
		echo "keyUsage=critical,digitalSignature,keyEncipherment"
		echo "extendedKeyUsage=$eku"
		[[ -n $san ]] && echo "subjectAltName=$san"
	} >"$ext"
	openssl req -new -key "$PKI/$name.key" -subj "$subj" 2>/dev/null |
		openssl x509 -req -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" -CAcreateserial -days "$DAYS" \
			-extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
	rm -f "$ext"
}

issue apiserver "/CN=kube-apiserver" serverAuth \
	"IP:$LISTEN_ADDR,IP:$(first_service_ip),DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
issue admin "/O=system:masters/CN=rwscaler-admin" clientAuth
issue controller-manager "/CN=system:kube-controller-manager" clientAuth
issue scheduler "/CN=system:kube-scheduler" clientAuth
# kwok plays the kubelet of every fake node (node status, leases, pod status, pod deletion)
issue kwok "/O=system:masters/CN=kwok" clientAuth
issue apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
issue front-proxy-client "/CN=front-proxy-client" clientAuth "" front-proxy-ca

if [[ ! -s $PKI/sa.key ]]; then
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$PKI/sa.key" 2>/dev/null
	openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
fi
chmod 600 "$PKI"/*.key

b64() { base64 -w0 <"$1"; }

# kubeconfig FILE USER CERT_NAME
kubeconfig() {
	local file=$1 user=$2 cert=$3
	[[ -s $file ]] && return
	cat >"$file.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: rwscaler-local
  cluster:
    server: https://$LISTEN_ADDR:$APISERVER_PORT
    certificate-authority-data: $(b64 "$PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(b64 "$PKI/$cert.crt")
    client-key-data: $(b64 "$PKI/$cert.key")
contexts:
- name: $user@rwscaler-local
  context:
    cluster: rwscaler-local
    user: $user
    namespace: default
current-context: $user@rwscaler-local
EOF
	chmod 600 "$file.tmp"
	mv "$file.tmp" "$file"
}

kubeconfig "$KUBECONFIG_PATH" rwscaler-admin admin
kubeconfig "$CLUSTER_DIR/controller-manager.kubeconfig" system:kube-controller-manager controller-manager
kubeconfig "$CLUSTER_DIR/scheduler.kubeconfig" system:kube-scheduler scheduler
kubeconfig "$CLUSTER_DIR/kwok.kubeconfig" kwok kwok
