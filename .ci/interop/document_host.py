"""An https host for client ID metadata documents, run by .ci/interop.sh: serves the files
of DIR as application/json on 127.0.0.1 at a free port, with a certificate of the stage's
own CA (the server under test trusts it through --client-metadata-ca-file). Prints the
port on its first line, then serves until killed.

    python3 document_host.py DIR CERT KEY
"""

import functools
import http.server
import ssl
import sys


class Documents(http.server.SimpleHTTPRequestHandler):
    extensions_map = {".json": "application/json"}

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write("document host: " + (format % args) + "\n")


def main(directory: str, cert: str, key: str) -> None:
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Documents, directory=directory)
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: document_host.py DIR CERT KEY")
    main(*sys.argv[1:4])
