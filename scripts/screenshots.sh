#!/usr/bin/env bash
# Takes the README's pictures of the real app window under Xvfb at 1600x1000: the welcome
# screen, a flow with the inspector open, the preview of a node, a finished run, the light
# theme, the formula editor as a field is typed, a scheduled flow's trigger with its run
# history, and the Connections window.
# Writes assets/screenshots/*.png. Look at each one after a UI change.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/packages.sh
ensure_packages xvfb imagemagick xdotool libgl1 libegl1 libgl1-mesa-dri libxkbcommon-x11-0 \
  libxcursor1 libxrandr2 libxi6

# TRIBUTARY_BIN=target/debug/tributary takes the pictures with a build already made.
bin=${TRIBUTARY_BIN:-target/release/tributary}
[ -n "${TRIBUTARY_BIN:-}" ] || cargo build --release --locked
out=assets/screenshots
mkdir -p "$out"
# A home of its own: no recent flows or connections of the user's in the pictures.
TRIBUTARY_HOME=$(mktemp -d)
export TRIBUTARY_HOME
display=:${SCREENSHOT_DISPLAY:-77}
Xvfb "$display" -screen 0 1600x1000x24 -nolisten tcp &
xvfb=$!
trap 'kill $xvfb 2>/dev/null; rm -rf "$TRIBUTARY_HOME"' EXIT
export DISPLAY=$display
sleep 1

# shot NAME SECONDS [gui arguments…]: opens the app, fills the screen with it, waits for
# previews or runs to finish, and captures the screen.
shot() {
  local name=$1 wait=$2
  shift 2
  "$bin" gui "$@" &
  local app=$!
  local window
  window=$(xdotool search --sync --name Tributary | head -n1)
  xdotool windowmove "$window" 0 0 windowsize "$window" 1600 1000
  sleep "$wait"
  import -window root "$out/$name.png"
  kill "$app"
  wait "$app" 2>/dev/null || true
  echo "$out/$name.png"
}

# typed NAME X Y TEXT GEOMETRY [gui arguments…]: opens the app, clicks at X,Y, goes to the
# end of the text there, types TEXT at a person's speed, and captures GEOMETRY of the screen.
typed() {
  local name=$1 x=$2 y=$3 text=$4 crop=$5
  shift 5
  "$bin" gui "$@" &
  local app=$!
  local window
  window=$(xdotool search --sync --name Tributary | head -n1)
  xdotool windowmove "$window" 0 0 windowsize "$window" 1600 1000
  sleep 3
  xdotool windowfocus --sync "$window"
  xdotool mousemove "$x" "$y" click 1
  sleep 0.3
  xdotool key ctrl+End
  xdotool type --delay 150 "$text"
  sleep 1
  import -window root -crop "$crop" +repage "$out/$name.png"
  kill "$app"
  wait "$app" 2>/dev/null || true
  echo "$out/$name.png"
}

demo=flows/demo-opportunities-to-lake.json
shot welcome 2
shot inspector 3 "$demo" --select lake
shot preview 3 "$demo" --select card
shot run 6 "$demo" --run
shot light 3 "$demo" --select name --theme light
shot s3 3 flows/demo-crm-to-s3.json --select lake
shot marketing-showcase 3 flows/marketing-channels-to-s3.json
# The formula editor offering a field computed above while one is typed in backquotes.
typed formula-editor 1440 791 ' & to_text(`wei' 330x330+1270+570 \
  flows/demo-opportunities-with-formulas.json --select compute

# A scheduled flow's trigger settings, and its History after a few runs: a copy of the demo
# on a weekday cron in Berlin, writing into the scratch home.
scheduled=$TRIBUTARY_HOME/scheduled-opportunities.json
sed -e 's|"expression": "rate(1 days)"|"expression": "cron(30 6 ? * MON-FRI *)", "time_zone": "Europe/Berlin"|' \
  -e "s|\"output\": \"out/opportunities-lake\"|\"output\": \"$TRIBUTARY_HOME/out\"|" "$demo" >"$scheduled"
grep -q 'Europe/Berlin' "$scheduled"
for _ in 1 2 3; do "$bin" run "$scheduled" >/dev/null; done
"$bin" activate "$scheduled" >/dev/null
shot history 3 "$scheduled" --tab history

# The Connections window, with connections made as a user would (secrets through stdin).
export TRIBUTARY_VAULT_PASSPHRASE=screenshots
$bin connection add lake --connector s3 --set region=eu-west-1 </dev/null
printf 'AKIAEXAMPLEKEY\nexample-secret\n' |
  $bin connection add archive --connector s3 --auth access_keys --set region=us-east-1
printf '\n' | $bin connection add crm --connector salesforce --set client_id=my-connected-app
printf 'example-key\n' |
  $bin connection add billing-api --connector http --auth api_key --set key_name=X-Api-Key
shot connections 3 flows/demo-crm-to-s3.json --connections
