"""What Oh-LoRA's service says outside her own replies (Korean, as upstream where it had one)."""

from __future__ import annotations

from engine.rules.sanctions import OHLORA_EMOJI

# Upstream's length-guard message (§1 step 2), without the console's "[SYSTEM MESSAGE]" tag.
TOO_LONG = (
    f"너무 긴 질문은 오로라{OHLORA_EMOJI} 에게 부담 돼요! "
    "그런 질문은 오로라의 절친 혜나 🌹 (LLM Hyena) 에게 해 주세요! 😢"
)
EMPTY = f"오로라 {OHLORA_EMOJI} 에게 하고 싶은 말을 글로 적어 주세요! 😊"
APOLOGY = (
    f"미안해요, 지금은 오로라 {OHLORA_EMOJI} 가 대답하기 어려워요. "
    "잠시 후에 다시 말을 걸어 주세요! 🙏"
)
GOODBYE = f"오로라와의 대화가 끝났습니다. {OHLORA_EMOJI}👋 다음에도 오로라와 함께해 주실 거죠?"
