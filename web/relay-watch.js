// @ts-check
/**
 * Relay-only connections whose TURN allocation fails: say so, rather than "connecting" for ever.
 *
 * With `iceTransportPolicy: "relay"` a connection has no candidate at all when the TURN server
 * refuses the credentials (wrong or expired), or does not answer: the browser never leaves
 * "new"/"checking" on its own. This watches one RTCPeerConnection's gathering and calls
 * `onFailure(reason)` once, with the TURN server's own words where the browser reports them
 * (`icecandidateerror`), when gathering ends with no relay candidate or none came within
 * `timeoutMs` of gathering's start. It is separate from SfuClient's state machine, which only
 * hears the outcome.
 */

/** Chromium's error code for a TURN server that did not answer. */
const NO_ANSWER = 701;

/**
 * @param {RTCPeerConnection} pc
 * @param {(reason: string) => void} onFailure
 * @param {number} [timeoutMs]
 * @returns {() => void} stops watching
 */
export function watchRelay(pc, onFailure, timeoutMs = 8000) {
  /** @type {string[]} */
  const errors = [];
  let relayed = false;
  let done = false;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;

  const fail = () => {
    if (done || relayed) return;
    stop();
    const detail = errors.length > 0 ? errors.join("; ") : "no relay candidate";
    onFailure(`TURN relay unavailable: ${detail}`);
  };

  /** @param {RTCPeerConnectionIceEvent} event */
  const onCandidate = (event) => {
    if (event.candidate?.type === "relay") {
      relayed = true;
      stop();
    }
  };

  /** @param {Event} event */
  const onCandidateError = (event) => {
    const e = /** @type {RTCPeerConnectionIceErrorEvent} */ (event);
    if (!e.url?.startsWith("turn")) return;
    let words = `${e.url} ${e.errorCode} ${e.errorText}`.trim();
    if (e.errorCode === 401 || e.errorCode === 403) words += " (wrong or expired credentials)";
    else if (e.errorCode === NO_ANSWER) words = `${e.url}: no answer from the TURN server`;
    if (!errors.includes(words)) errors.push(words);
  };

  const onGathering = () => {
    if (pc.iceGatheringState === "gathering" && timer === undefined) {
      timer = setTimeout(fail, timeoutMs);
    } else if (pc.iceGatheringState === "complete") {
      fail();
    }
  };

  function stop() {
    done = true;
    clearTimeout(timer);
    pc.removeEventListener("icecandidate", onCandidate);
    pc.removeEventListener("icecandidateerror", onCandidateError);
    pc.removeEventListener("icegatheringstatechange", onGathering);
  }

  pc.addEventListener("icecandidate", onCandidate);
  pc.addEventListener("icecandidateerror", onCandidateError);
  pc.addEventListener("icegatheringstatechange", onGathering);
  return stop;
}
