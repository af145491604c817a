//! Where models run: the backend a run asks for resolved to a burn device (wgpu on a
//! real GPU, burn's `flex` CPU backend otherwise, or a remote `attnlab serve`), the
//! tokens shown to remote servers, and the server itself.
//!
//! `backend` picks and describes devices (`auto` never picks a software adapter);
//! `credentials` holds the tokens a process presents to remote servers, each only to
//! the host it was given for (`credentials_file` reads the user's credentials file);
//! `serve` is `attnlab serve`, burn's remote server on this machine's best device,
//! behind `gate`, which refuses WebSocket upgrades from web pages. Nothing here
//! knows about runs: the trainer and the inspection tools ask for a device and get one.

mod backend;
mod credentials;
mod credentials_file;
mod gate;
mod serve;

pub use backend::{
    BackendError, CONNECT_TIMEOUT, CpuBackend, connect, local_gpu, select_backend, select_device,
    server_answers,
};
pub use credentials::{
    FileRefused, MAX_TOKEN_LEN, Presented, TOKEN_ENV, Token, TokenError, Withheld, credential_for,
    credentials_path, is_loopback, normalise_address, set_server_token, split_backend_tokens,
};
pub use serve::{Listening, ServeOptions, ServeTransport, serve};
