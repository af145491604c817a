//! Where models run: the backend a run asks for resolved to a burn device (wgpu on a
//! real GPU, burn's `flex` CPU backend otherwise, or a remote `attnlab serve`), the
//! tokens shown to remote servers, and the server itself.
//!
//! `backend` picks and describes devices (`auto` never picks a software adapter);
//! `credentials` holds the tokens a process presents to remote servers; `serve` is
//! `attnlab serve`, burn's remote server on this machine's best device. Nothing here
//! knows about runs: the trainer and the inspection tools ask for a device and get one.

mod backend;
mod credentials;
mod serve;

pub use backend::{
    BackendError, CONNECT_TIMEOUT, CpuBackend, connect, local_gpu, select_backend, select_device,
    server_answers,
};
pub use credentials::{
    MAX_TOKEN_LEN, TOKEN_ENV, Token, TokenError, set_default_token, set_server_token,
    split_backend_tokens, token_for,
};
pub use serve::{Listening, ServeOptions, ServeTransport, serve};
