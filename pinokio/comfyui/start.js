// ComfyUI on loopback only: reach it through Pinokio (or an SSH tunnel over the tailnet).
module.exports = {
  daemon: true,
  run: [
    { method: "shell.run", params: { conda: { skip: true }, venv: "env", path: "app",
        message: "python main.py --listen 127.0.0.1 --port 8188",
        on: [{ event: "/http:\\/\\/[0-9.:]+/", done: true }] } },
    { method: "local.set", params: { url: "{{input.event[0]}}" } }
  ]
}
