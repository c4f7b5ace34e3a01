#!/usr/bin/env bash
# Builds the training text of the default model from public-domain text in Debian packages:
#   bible-kjv 4.38 (program `bible`) + bible-kjv-text 4.38 (its data): the King James Version
#     (1611; copyright expired; Debian packaging GPL-2+, the program's data "for unrestricted use")
#   jargon 4.0.0-5.3: the Jargon File 4.0.0 (1996), "in the public domain"
#   dict-devil 1.0-13.1: Ambrose Bierce, The Devil's Dictionary (1911; "A Public Domain Text,
#     Copyright Expired")
#   dict-gcide 0.48.5+nmu2: only the entries of Webster's Revised Unabridged Dictionary (1913) and
#     its 1913 supplement (public domain); GCIDE as a whole is GPL-2+, so every entry carrying
#     any other source tag (WordNet, PJC, ...) is dropped.
# Usage: models/default/build_corpus.sh [OUT_DIR]   (default /tmp/rankrl-default-corpus)
# Writes OUT_DIR/{train,val,test}.txt (all four texts) and OUT_DIR/base/{train,val,test}.txt (the
# KJV and the Jargon File only: the corpus of the model's first 5000 training steps) and prints
# their sha256 (compared with the recorded ones).
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
#   Devil's Dictionary: from its preface on, paragraphs (lines joined) grouped into documents of
#     at least 2000 bytes.
#   GCIDE: an entry starts at an unindented line with a \pronunciation\; it is kept only if every
#     source tag it carries is [1913 Webster] or [Webster 1913 Suppl.]; the tags, the
#     pronunciations and braces are removed, lines of a paragraph joined; consecutive entries are
#     grouped into documents of at least 2000 bytes.
#   Documents are split by their index i in the order KJV, Jargon, Devil, GCIDE: i % 20 == 7
#     -> val, i % 20 == 13 -> test, else train (90/5/5, no document in two splits; the KJV and
#     Jargon documents keep the indices, hence the splits, of the base corpus). Documents are
#     separated by a blank line.
set -euo pipefail
OUT=${1:-/tmp/rankrl-default-corpus}
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
apt-get download bible-kjv=4.38 bible-kjv-text=4.38 jargon=4.0.0-5.3 dict-devil=1.0-13.1 \
  dict-gcide=0.48.5+nmu2 >/dev/null 2>&1 ||
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

zcat root/usr/share/dictd/devil.dict.dz | LC_ALL=C awk '
  /^[ \t]*PREFACE[ \t]*$/ { started = 1 }
  !started { next }
  { l = $0; gsub(/abcdefghijklmnopqrstuvwxyz$/, "", l)   # the dictd alphabet entry at the end
    gsub(/\t/, " ", l); gsub(/ +/, " ", l); sub(/^ /, "", l); sub(/ $/, "", l)
    if (l == "") { if (para != "") { doc = doc (doc == "" ? "" : "\001") para; para = "" }
                   if (length(doc) >= 2000) { print doc; doc = "" }
                   next }
    para = para (para == "" ? "" : " ") l }
  END { if (para != "") doc = doc (doc == "" ? "" : "\001") para; if (doc != "") print doc }' > devil.docs
zcat root/usr/share/dictd/gcide.dict.dz | LC_ALL=C awk '
  function flush_entry(   i, text, para) {
    if (n > 0 && tags > 0 && pd_only) {
      for (i = 1; i <= n; i++) {
        if (lines[i] == "") { if (para != "") { text = text (text == "" ? "" : "\001") para; para = "" } continue }
        para = para (para == "" ? "" : " ") lines[i] }
      if (para != "") text = text (text == "" ? "" : "\001") para
      doc = doc (doc == "" ? "" : "\001") text
      if (length(doc) >= 2000) { print doc; doc = "" } }
    n = 0; tags = 0; pd_only = 1 }
  /^[^ \t].* \\[^\\]*\\/ { started = 1; flush_entry() }
  !started { next }
  { l = $0
    if (l ~ /^[ \t]*\[[^]]*\][ \t]*$/) {   # a source tag on its own line
      tags++; if (l !~ /^[ \t]*\[(1913 Webster|Webster 1913 Suppl\.)\][ \t]*$/) pd_only = 0; next }
    gsub(/ \\[^\\]*\\/, "", l)                                # the pronunciation \Ab*do"men\
    gsub(/ *\[(1913 Webster|Webster 1913 Suppl\.)\]/, "", l)   # a tag inside a paragraph
    gsub(/[{}]/, "", l); gsub(/\t/, " ", l); gsub(/ +/, " ", l); sub(/^ /, "", l); sub(/ $/, "", l)
    lines[++n] = l }
  END { flush_entry(); if (doc != "") print doc }' > gcide.docs

# split DOCS... -> OUT_DIR: document i goes to val (i % 20 == 7), test (13) or train.
split_documents() {
  local out=$1; shift
  mkdir -p "$out"
  cat "$@" |
    awk -v out="$out" '{ i = NR - 1; f = (i % 20 == 7) ? "val" : (i % 20 == 13) ? "test" : "train";
                         gsub(/\001/, "\n"); file = out "/" f ".txt";
                         if (seen[f]++) printf "\n" > file; print > file }'
}
rm -f "$OUT"/{train,val,test}.txt "$OUT"/base/{train,val,test}.txt
split_documents "$OUT/base" kjv.docs jargon.docs
split_documents "$OUT" kjv.docs jargon.docs devil.docs gcide.docs
cd "$OUT"
echo "documents: kjv $(wc -l < "$WORK/kjv.docs"), jargon $(wc -l < "$WORK/jargon.docs")," \
  "devil $(wc -l < "$WORK/devil.docs"), gcide $(wc -l < "$WORK/gcide.docs")"
sha256sum base/train.txt base/val.txt base/test.txt train.txt val.txt test.txt
# Recorded when the default model was trained (see MODEL_CARD.md).
cat > "$WORK/expected.sha256" <<'SUMS'
683b33963e00b48b0f38a4520a4248ffe3dddb84f01271872468ef2a4ed33e57  base/train.txt
c23d60aa6f39aa10033c0f98431ac52ca556d26b06680f3fa2915d4e86b61b00  base/val.txt
df000f7d39f494aa3ee93e6824ba2da588048248aea784ffda9a7e17008d96f2  base/test.txt
217667f565df6350d8f9fac344fa7ccb6d974d02638f8f73fc44816b844db226  train.txt
7d2e8ad3444d1973059ee933e0ca07eeb2773266e8b16c92b9c9e49a3df81318  val.txt
ff7f51d3a4331b7af95531f9d1791685b1d9c712710c5aa33df34248e5e45bf6  test.txt
SUMS
if ! sha256sum --quiet -c "$WORK/expected.sha256"; then
  echo "warning: the text differs from the recorded corpus" >&2
fi
