module.exports = {
  daemon: true,
  run: [
    { method: "shell.run", params: { conda: { skip: true }, path: "app",
        env: { OLLAMA_HOST: "127.0.0.1:11434", OLLAMA_MODELS: "{{cwd}}/app/models" },
        message: "bin/ollama serve",
        on: [{ event: "/Listening on ([0-9.:]+)/", done: true }] } },
    { method: "local.set", params: { url: "http://{{input.event[1]}}" } }
  ]
}
