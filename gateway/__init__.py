"""The Graduate Exchange Gateway.

The message flow, one package per stage:

    intake (parse, validate) -> security (verify) -> access / routing -> messages (store) -> delivery

``registry`` holds the participants, ``codes`` the domain code lists, ``pki`` the key material,
``web`` the Flask application factory and ``cli`` the ``gateway`` command.
"""

__version__ = "0.1.0"
