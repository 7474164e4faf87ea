module.exports = {
  daemon: true,
  run: [
    { method: "shell.run", params: { conda: { skip: true }, venv: "env", path: "app",
        env: { GRADIO_SERVER_NAME: "127.0.0.1", GRADIO_SERVER_PORT: "7860" },
        message: "python facefusion.py run",
        on: [{ event: "/http:\\/\\/[0-9.:]+/", done: true }] } },
    { method: "local.set", params: { url: "{{input.event[0]}}" } }
  ]
}
