#!/bin/sh
# Checks that includes only point down the layers (docs/architecture.md):
# lib <- log <- store <- repl <- server, lib <- proto <- {server, client};
# daemon (tallyd's main) sits on server; tool (the tally CLI) on client,
# plus log/ for the offline `tally log`, store/ for `tally restore`, and
# proto/ with client/wire.h for `tally backup`.
src="${TALLY_SRC_DIR:-$(dirname "$0")/..}/src"
fail=0
check() { # layer, then the layers it must not include
    layer=$1; shift
    for bad in "$@"; do
        hits=$(grep -n "#include \"$bad/" "$src/$layer"/*.[ch] 2>/dev/null)
        if [ -n "$hits" ]; then
            echo "FAIL: src/$layer includes src/$bad:"; echo "$hits"; fail=1
        fi
    done
}
check lib log store repl proto server client tool daemon
check log store repl proto server client
check store repl proto server client
check repl proto server client
check proto log store repl server client
check client log store repl server
check server client tool daemon
check tool repl server daemon
check daemon client tool
# A layer's private header (src/LAYER/*_int.h: what its files share) is
# included only by files of that layer.
for hdr in "$src"/*/*_int.h; do
    [ -e "$hdr" ] || continue
    layer=$(basename "$(dirname "$hdr")")
    name="$layer/$(basename "$hdr")"
    hits=$(grep -rn "#include \"$name\"" "$src" --include='*.[ch]' | grep -v "^$src/$layer/")
    if [ -n "$hits" ]; then
        echo "FAIL: $name is private to src/$layer:"; echo "$hits"; fail=1
    fi
done
if [ $fail -eq 0 ]; then echo "layers: every include points downward; private headers stay home"; fi
exit $fail
