#!/usr/bin/env bash
# Builds the training text of the default model from two public-domain Debian packages:
#   bible-kjv 4.38 (program `bible`) + bible-kjv-text 4.38 (its data): the King James Version
#     (1611; copyright expired; Debian packaging GPL-2+, the program's data "for unrestricted use")
#   jargon 4.0.0-5.3: the Jargon File 4.0.0 (1996), "in the public domain"
# Usage: models/default/build_corpus.sh [OUT_DIR]   (default /tmp/rankrl-default-corpus)
# Writes OUT_DIR/{train,val,test}.txt and prints their sha256 (compared with the recorded ones).
# Needs apt-get (download only, nothing is installed), dpkg-deb, awk and libreadline8 (the `bible`
# program links it).
#
# Preprocessing (all ASCII in, ASCII out):
#   KJV: `bible -f -p DATA gen1:1-rev22:21` prints one verse per line as "Ge1:1 text"; the
#     reference is dropped and the verses of a chapter are joined by one space: one chapter = one
#     document (1189 documents).
#   Jargon File: the info file is cut at its node separators (0x1f); one node = one document; the
#     "File: ... Node: ..." header lines, menu lines ("* Menu:", "* name::"), the cross-reference
#     braces { } and tabs are removed; runs of spaces collapse to one; within a paragraph the lines
#     are joined; paragraphs are separated by one newline.
#   Documents are split by their index i in the order above (KJV first, then Jargon): i % 20 == 7
#     -> val, i % 20 == 13 -> test, else train (90/5/5, no document in two splits). Documents are
#     separated by a blank line.
set -euo pipefail
OUT=${1:-/tmp/rankrl-default-corpus}
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
apt-get download bible-kjv=4.38 bible-kjv-text=4.38 jargon=4.0.0-5.3 >/dev/null 2>&1 ||
  { echo "apt-get download failed (run apt-get update?)" >&2; exit 1; }
for deb in *.deb; do dpkg-deb -x "$deb" root; done

# One document per line (paragraph breaks inside a document are encoded as \x01, restored below).
root/usr/bin/bible -f -p root/usr/lib "gen1:1-rev22:21" |
  awk '{ ref = $1; sub(/:[0-9]+$/, "", ref); $1 = "";
         sub(/^ +/, ""); gsub(/ +/, " ");
         if (ref != last && NR > 1) printf "\n";
         printf "%s%s", (ref == last ? " " : ""), $0; last = ref }
       END { printf "\n" }' > kjv.docs
zcat root/usr/share/info/jargon.info.gz |
  awk 'BEGIN { RS = "\037" }
       NR > 1 { n = split($0, lines, "\n"); doc = ""; para = "";
         for (i = 1; i <= n; i++) {
           l = lines[i];
           if (l ~ /^File: jargon\.info, Node:/ || l ~ /^\* Menu:/ || l ~ /^\* [^:]*::/) continue;
           gsub(/\t/, " ", l); gsub(/[{}]/, "", l); gsub(/ +/, " ", l); sub(/^ /, "", l); sub(/ $/, "", l);
           if (l == "") { if (para != "") { doc = doc (doc == "" ? "" : "\001") para; para = "" } continue }
           para = para (para == "" ? "" : " ") l }
         if (para != "") doc = doc (doc == "" ? "" : "\001") para;
         if (doc != "") print doc }' > jargon.docs

cat kjv.docs jargon.docs |
  awk -v out="$OUT" '{ i = NR - 1; f = (i % 20 == 7) ? "val" : (i % 20 == 13) ? "test" : "train";
                       gsub(/\001/, "\n"); file = out "/" f ".txt";
                       if (seen[f]++) printf "\n" > file; print > file }'
cd "$OUT"
echo "documents: kjv $(wc -l < "$WORK/kjv.docs"), jargon $(wc -l < "$WORK/jargon.docs")"
sha256sum train.txt val.txt test.txt
# Recorded when the default model was trained (see MODEL_CARD.md).
cat > "$WORK/expected.sha256" <<'SUMS'
683b33963e00b48b0f38a4520a4248ffe3dddb84f01271872468ef2a4ed33e57  train.txt
c23d60aa6f39aa10033c0f98431ac52ca556d26b06680f3fa2915d4e86b61b00  val.txt
df000f7d39f494aa3ee93e6824ba2da588048248aea784ffda9a7e17008d96f2  test.txt
SUMS
if ! sha256sum --quiet -c "$WORK/expected.sha256"; then
  echo "warning: the text differs from the recorded corpus" >&2
fi
