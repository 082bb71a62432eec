#!/usr/bin/env bash
# Makes the certificates for TLS between bots, the hub and operators: a CA, the hub's server
# cert and one client cert per bot and per operator, all EC P-256.
# Tests call it at run time into a temp dir, so no private key ever lives in the repository.
# Re-running reuses the CA, so bots can be added later; an existing leaf is kept unless --force.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/certs.sh DIR [--bots ID,ID,...] [--operators NAME,...] [--hub-names NAME,...]
                            [--days N] [--force]

Writes, with the openssl CLI:
  DIR/ca.pem, ca.key               the CA (made once, reused on later runs, never replaced)
  DIR/hub.pem, hub.key             server cert: SAN localhost, 127.0.0.1, ::1 + --hub-names
  DIR/bots/ID.pem, ID.key          client cert: CN=ID, SAN DNS:ID
  DIR/operators/NAME.pem, .key     client cert: CN=NAME

  --bots, --operators   comma-separated; letters, digits, '.', '_', '-', 1..128 characters each
  --hub-names           extra hub names: IPv4/IPv6 addresses become IP SANs, the rest DNS
  --days N              validity of new leaf certs (default 825); the CA gets at least 3650
  --force               replace leaf certs that exist (the hub's included), never the CA

Keys are 0600, a new DIR 0700. Exit 64 on bad arguments.
EOF
}
die() { echo "certs.sh: $*" >&2; exit 1; }
bad() { echo "certs.sh: $*" >&2; echo "try: scripts/certs.sh --help" >&2; exit 64; }

dir='' days=825 force=0
bots=() operators=() hub_names=()
# Splits a comma-separated list into the named array; an empty element is a typo, not "none".
split_into() {
    local -n into=$1
    local flag=$2 value=$3 item items
    [[ $value =~ ^[^,]+(,[^,]+)*$ ]] || bad "$flag wants a comma-separated list without empty entries, got '$value'"
    IFS=, read -ra items <<<"$value"
    for item in "${items[@]}"; do into+=("$item"); done
}
while [ $# -gt 0 ]; do
    case $1 in
    -h | --help) usage; exit 0 ;;
    --force) force=1; shift; continue ;;
    --bots | --operators | --hub-names | --days)
        [ $# -ge 2 ] || bad "$1 needs a value"
        flag=$1 value=$2; shift 2 ;;
    --bots=* | --operators=* | --hub-names=* | --days=*)
        flag=${1%%=*} value=${1#*=}; shift ;;
    -*) bad "unknown option $1" ;;
    *)
        [ -z "$dir" ] || bad "one DIR only (got '$dir' and '$1')"
        dir=$1; shift; continue ;;
    esac
    case $flag in
    --bots) split_into bots "$flag" "$value" ;;
    --operators) split_into operators "$flag" "$value" ;;
    --hub-names) split_into hub_names "$flag" "$value" ;;
    --days)
        [[ $value =~ ^[1-9][0-9]{0,4}$ ]] || bad "--days wants a whole number of days 1..99999, got '$value'"
        days=$value ;;
    esac
done
[ -n "$dir" ] || { usage >&2; exit 64; }

# The ids become file names and certificate names, so nothing that could climb out of DIR or
# need quoting anywhere.
for id in ${bots[@]+"${bots[@]}"} ${operators[@]+"${operators[@]}"}; do
    [[ $id =~ ^[A-Za-z0-9._-]{1,128}$ ]] ||
        bad "bad id '$id': letters, digits, '.', '_', '-' only, 1..128 characters"
    [[ $id != . && $id != .. ]] || bad "bad id '$id': not a usable name"
done
# The hub accepts a bot whose cert's CN equals its id, and both kinds come from this CA: an
# operator sharing a bot's name could pose as that bot, so the two name sets stay apart.
for name in ${operators[@]+"${operators[@]}"}; do
    for id in ${bots[@]+"${bots[@]}"}; do
        [ "$name" != "$id" ] || bad "'$name' is both a bot and an operator; their cert names must differ"
    done
    [ ! -e "$dir/bots/$name.pem" ] || bad "operator '$name' has the name of bot cert $dir/bots/$name.pem"
done
for id in ${bots[@]+"${bots[@]}"}; do
    [ ! -e "$dir/operators/$id.pem" ] || bad "bot '$id' has the name of operator cert $dir/operators/$id.pem"
done

hub_san="DNS:localhost,IP:127.0.0.1,IP:::1"
for name in ${hub_names[@]+"${hub_names[@]}"}; do
    if [[ $name =~ ^[0-9.]+$ ]]; then
        # All digits and dots: meant as IPv4, so it has to be one.
        ipv4=0
        if [[ $name =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]]; then
            ((10#${BASH_REMATCH[1]} < 256 && 10#${BASH_REMATCH[2]} < 256 &&
                10#${BASH_REMATCH[3]} < 256 && 10#${BASH_REMATCH[4]} < 256)) && ipv4=1
        fi
        [ "$ipv4" = 1 ] || bad "bad hub name '$name': not an IPv4 address"
        entry="IP:$name"
    elif [[ $name == *:* ]]; then
        [[ $name =~ ^[0-9A-Fa-f:.]{2,45}$ ]] || bad "bad hub name '$name': not an IPv6 address"
        entry="IP:$name"
    else
        [[ $name =~ ^(\*\.)?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?$ && ${#name} -le 253 ]] ||
            bad "bad hub name '$name': not a DNS name"
        entry="DNS:$name"
    fi
    [[ ,$hub_san, == *,"$entry",* ]] || hub_san+=",$entry"
done

command -v openssl >/dev/null || die "openssl not found (apt-get install openssl)"

# Everything made from here on is private to the user: keys, DIR and its subdirectories.
umask 077
mkdir -p "$dir" "$dir/bots" "$dir/operators"
# Scratch space in DIR itself, so finished files are renamed into place (never half written).
work=$(mktemp -d "$dir/.certs.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The only config any openssl call here sees: the system's openssl.cnf can change defaults.
# The SAN comes from the environment, so one config serves every leaf.
export OPENSSL_CONF=$work/openssl.cnf OPC_SAN=
cat >"$OPENSSL_CONF" <<'EOF'
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[hub]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $ENV::OPC_SAN
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[bot]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = $ENV::OPC_SAN
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[operator]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF

# openssl is chatty on success and says what went wrong on failure: show it only then.
ossl() {
    if ! openssl "$@" 2>"$work/err"; then
        cat "$work/err" >&2
        die "openssl $1 failed"
    fi
}
newkey() { ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

ca=$dir/ca.pem ca_key=$dir/ca.key
if [ -e "$ca" ] || [ -e "$ca_key" ]; then
    { [ -f "$ca" ] && [ -f "$ca_key" ]; } ||
        die "$dir has only one of ca.pem and ca.key; refusing to make a new CA over it (remove both to start over)"
    ossl x509 -noout -pubkey -in "$ca" -out "$work/ca.pub"
    ossl pkey -pubout -in "$ca_key" -out "$work/key.pub"
    cmp -s "$work/ca.pub" "$work/key.pub" || die "$ca_key is not the key of $ca"
    echo "reused CA    $ca"
else
    newkey "$work/ca.key"
    # A random suffix tells CAs made by different runs apart in error messages and trust stores.
    ossl req -new -x509 -key "$work/ca.key" -subj "/O=opconsole/CN=opconsole CA $(openssl rand -hex 4)" \
        -days $((days > 3650 ? days : 3650)) -sha256 -extensions ca -out "$work/ca.pem"
    chmod 0644 "$work/ca.pem"
    mv "$work/ca.key" "$ca_key"
    mv "$work/ca.pem" "$ca"
    echo "wrote CA     $ca, $ca_key"
fi

# leaf PATH-WITHOUT-SUFFIX SUBJECT EXTENSION-SECTION SAN
wrote=0 kept=0
leaf() {
    local out=$1 subj=$2 section=$3 san=$4 label
    label=$(printf '%-12s' "$section")
    if [ "$force" = 0 ] && { [ -e "$out.pem" ] || [ -e "$out.key" ]; }; then
        echo "kept $label $out.pem (exists; --force replaces it)"
        kept=$((kept + 1))
        return
    fi
    newkey "$work/leaf.key"
    ossl req -new -key "$work/leaf.key" -subj "$subj" -out "$work/leaf.csr"
    # A random 128-bit serial: no serial file to keep next to the CA.
    OPC_SAN=$san ossl x509 -req -in "$work/leaf.csr" -CA "$ca" -CAkey "$ca_key" \
        -set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha256 \
        -extfile "$OPENSSL_CONF" -extensions "$section" -out "$work/leaf.pem"
    chmod 0644 "$work/leaf.pem"
    # Key first: an interrupted run leaves a key without a cert, which the next run reports
    # as existing instead of silently pairing a new cert with it.
    mv -f "$work/leaf.key" "$out.key"
    mv -f "$work/leaf.pem" "$out.pem"
    echo "wrote $label $out.pem, $out.key"
    wrote=$((wrote + 1))
}

if [ "$force" = 0 ] && [ -e "$dir/hub.pem" ] && [ ${#hub_names[@]} -gt 0 ]; then
    echo "note: $dir/hub.pem exists, so --hub-names are not applied without --force" >&2
fi
leaf "$dir/hub" "/O=opconsole/OU=hub/CN=opconsole hub" hub "$hub_san"
declare -A seen=()
for id in ${bots[@]+"${bots[@]}"}; do
    [ -z "${seen[b$id]:-}" ] || continue
    seen[b$id]=1
    leaf "$dir/bots/$id" "/O=opconsole/OU=bot/CN=$id" bot "DNS:$id"
done
for name in ${operators[@]+"${operators[@]}"}; do
    [ -z "${seen[o$name]:-}" ] || continue
    seen[o$name]=1
    leaf "$dir/operators/$name" "/O=opconsole/OU=operator/CN=$name" operator ""
done

# Every leaf in DIR, old ones too: one signed by an earlier CA or expired shows up here, not at
# the first handshake. -purpose checks the key usage TLS will ask for; -x509_strict the form.
checked=0
verify() {
    local purpose=$1 cert=$2
    openssl verify -x509_strict -purpose "$purpose" -CAfile "$ca" "$cert" >"$work/err" 2>&1 || {
        cat "$work/err" >&2
        die "$cert does not verify against $ca (signed by another CA? --force replaces it)"
    }
    checked=$((checked + 1))
}
[ ! -e "$dir/hub.pem" ] || verify sslserver "$dir/hub.pem"
for cert in "$dir"/bots/*.pem "$dir"/operators/*.pem; do
    [ ! -e "$cert" ] || verify sslclient "$cert"
done
echo "$wrote written, $kept kept, $checked leaf certs verified against $ca"
